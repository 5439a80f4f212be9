(function () {
  'use strict';
  var form = document.getElementById('login-form');
  var err = document.getElementById('login-error');
  var submit = document.getElementById('login-submit');
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var name = document.getElementById('login-name').value.trim();
    var password = document.getElementById('login-password').value;
    if (!name || !password) { err.textContent = 'Informe usuário e senha.'; return; }
    err.textContent = '';
    submit.disabled = true; submit.textContent = 'Entrando…';
    fetch('/api/v1/session', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify({ name: name, password: password })
    }).then(function (r) {
      // Back to the page that asked for the login (the console, or the cold-chain chart).
      if (r.ok) { location.replace(location.href.split('#')[0]); return; }
      return r.json().catch(function () { return {}; }).then(function (j) {
        err.textContent = (j && j.error && j.error.message) || 'Não foi possível entrar (erro ' + r.status + ').';
        document.getElementById('login-password').select();
      });
    }).catch(function () {
      err.textContent = 'Sem contato com o aparelho. Verifique a rede e tente de novo.';
    }).finally(function () { submit.disabled = false; submit.textContent = 'Entrar'; });
  });
})();
