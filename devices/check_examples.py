#!/usr/bin/env python3
"""Consistency check of devices/: the manifest, the example files and the schemas.

    python3 devices/check_examples.py

Checks that every example file is listed in examples.json (and every entry has
its file), that file names agree with expect/reason, that each example's JSON
shape matches its reason (not_json does not parse, not_object is not an object),
that every schema is valid draft 2020-12, and that each example validates against
its schema exactly when the manifest's `schema_valid` says so. Kiosk results
(checkin_kiosk/examples/result/) are checked against result.schema.json.
Schema checks need the `jsonschema` package (pip install jsonschema); without it
they are skipped. Ends with "N passed, M failed"; exits non-zero on a failure.
"""
import glob
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REASONS = {"not_json", "not_object", "missing_field", "wrong_type", "out_of_range", "unknown_value"}
KINDS = {
    "kiosk_scan": ("checkin_kiosk/schema.json", r"^clinic/[a-z0-9-]{1,48}/kiosk/[A-Za-z0-9_-]{1,64}/scan$"),
    "presence": ("presence_sensor/schema.json", r"^clinic/[a-z0-9-]{1,48}/room/[A-Za-z0-9_-]{1,64}/presence/[A-Za-z0-9_-]{1,64}$"),
    "environment": ("environment/schema.json", r"^clinic/[a-z0-9-]{1,48}/room/[A-Za-z0-9_-]{1,64}/environment/[A-Za-z0-9_-]{1,64}$"),
    "wearable": ("wearable_gateway/schema.json", r"^clinic/[a-z0-9-]{1,48}/wearable/[A-Za-z0-9_-]{1,64}$"),
    "device_status": ("device_status.schema.json", r"^clinic/[a-z0-9-]{1,48}/device/[A-Za-z0-9_-]{1,64}/status$"),
}
FOLDER_KIND = {"checkin_kiosk": "kiosk_scan", "presence_sensor": "presence", "environment": "environment",
               "wearable_gateway": "wearable", "device_status": "device_status"}

passed = failed = 0


def strict_loads(text):
    """RFC 8259 JSON: Python's json also takes NaN and Infinity, which are not JSON."""
    def reject(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=reject)


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL - {what}")


try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:  # pragma: no cover
    jsonschema = None
    print("note: jsonschema is not installed; schema checks skipped (pip install jsonschema)")

validators = {}
if jsonschema:
    for path in sorted(glob.glob(os.path.join(HERE, "**", "*schema.json"), recursive=True)):
        rel = os.path.relpath(path, HERE)
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        try:
            Draft202012Validator.check_schema(schema)
            check(schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema", f"{rel}: declares draft 2020-12")
            validators[rel] = Draft202012Validator(schema)
            for ex in schema.get("examples", []):
                check(validators[rel].is_valid(ex), f"{rel}: its own example validates")
        except jsonschema.SchemaError as e:
            check(False, f"{rel}: invalid schema: {e.message}")

with open(os.path.join(HERE, "examples.json"), encoding="utf-8") as f:
    manifest = json.load(f)
listed = set()
for e in manifest:
    rel = e["file"]
    listed.add(rel)
    path = os.path.join(HERE, rel)
    name = os.path.basename(rel)
    folder = rel.split("/")[0]
    check(os.path.isfile(path), f"{rel}: file exists")
    if not os.path.isfile(path):
        continue
    kind = e.get("topic_kind")
    check(kind in KINDS, f"{rel}: topic_kind {kind!r} is known")
    check(FOLDER_KIND.get(folder) == kind, f"{rel}: topic_kind matches its folder")
    check(re.match(KINDS.get(kind, ("", "^$"))[1], e.get("topic", "")) is not None, f"{rel}: topic {e.get('topic')!r} has the {kind} shape")
    check(e.get("expect") in ("accepted", "rejected"), f"{rel}: expect is accepted or rejected")
    if e["expect"] == "accepted":
        check(name.startswith("valid-") and "reason" not in e, f"{rel}: accepted examples are valid-*.json with no reason")
    else:
        m = re.match(r"^invalid-([a-z_]+)-.+\.json$", name)
        check(m is not None and m.group(1) == e.get("reason") and e.get("reason") in REASONS,
              f"{rel}: name invalid-<reason>-*.json agrees with reason {e.get('reason')!r}")
    raw = open(path, "rb").read()
    check(len(raw) <= 64 * 1024, f"{rel}: within 64 KiB")
    try:
        doc = strict_loads(raw.decode("utf-8"))
        parsed = True
    except (ValueError, UnicodeDecodeError):
        doc, parsed = None, False
    if e.get("reason") == "not_json":
        check(not parsed, f"{rel}: not_json example does not parse")
        continue
    check(parsed, f"{rel}: parses as JSON")
    if e.get("reason") == "not_object":
        check(not isinstance(doc, dict), f"{rel}: not_object example is not an object")
    else:
        check(isinstance(doc, dict), f"{rel}: is a JSON object")
    if kind == "kiosk_scan":
        if e["expect"] == "rejected":
            check("result" in e and e["result"] in (None, "invalid_request"), f"{rel}: kiosk rejection says its result (invalid_request or null)")
            sid = doc.get("scan_id") if isinstance(doc, dict) else None
            readable = isinstance(sid, str) and 1 <= len(sid) <= 64
            check((e["result"] == "invalid_request") == readable, f"{rel}: invalid_request exactly when scan_id is readable")
    elif kind in ("presence", "environment", "wearable") and isinstance(doc, dict):
        mid = doc.get("msg_id")
        readable = isinstance(mid, str) and 1 <= len(mid) <= 64
        ack = e.get("ack")
        if readable:
            want = {"msg_id": mid} if e["expect"] == "accepted" else {"msg_id": mid, "error": e["reason"]}
            check(ack == want, f"{rel}: ack {ack} should be {want}")
        else:
            check(ack is None, f"{rel}: no readable msg_id, so no ack")
    if kind == "wearable" and e["expect"] == "accepted":
        check(e.get("samples_valid", 0) + e.get("samples_dropped", 0) == len(doc["samples"]), f"{rel}: samples_valid + samples_dropped = samples")
    if validators:
        v = validators[KINDS[kind][0]]
        ok = v.is_valid(doc)
        check(ok == e.get("schema_valid"), f"{rel}: schema says {'valid' if ok else 'invalid'}, manifest schema_valid={e.get('schema_valid')}")

for path in sorted(glob.glob(os.path.join(HERE, "*", "examples", "*.json"))):
    rel = os.path.relpath(path, HERE)
    check(rel in listed, f"{rel}: listed in examples.json")

for path in sorted(glob.glob(os.path.join(HERE, "checkin_kiosk", "examples", "result", "*.json"))):
    rel = os.path.relpath(path, HERE)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if validators:
        ok = validators["checkin_kiosk/result.schema.json"].is_valid(doc)
        want = os.path.basename(path).startswith("valid-")
        check(ok == want, f"{rel}: result schema says {'valid' if ok else 'invalid'}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
