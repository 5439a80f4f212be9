// The system OpenSSL's libcrypto (Debian's libssl-dev), for PBKDF2 only: staff passwords
// take 600,000 iterations of HMAC-SHA256, which the optimised C implementation does in a
// fraction of the time a debug build of a Swift loop takes.
#include <openssl/evp.h>
