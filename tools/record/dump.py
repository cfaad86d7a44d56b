#!/usr/bin/env python3
"""Print a human-readable view of captured OTLP trace requests.

Usage: dump.py DIR [DIR...]

Reads DIR/NNN.bin[.gz] (OTLP protobuf, decoded with opentelemetry-proto +
google.protobuf.json_format) and DIR/NNN.json[.gz] (OTLP/JSON, read as-is) and
prints, per span: file, service.name, service.instance.id, kind, name,
trace_id, span_id, parent_span_id, links, flags, status, events, scope and all
attributes,
followed by per-service / per-(service, kind, name) span counts.
Needs the venv (tools/record/.venv) for .bin files.
"""
import base64
import collections
import glob
import gzip
import json
import os
import sys

KINDS = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _b64_to_hex(v):
    return base64.b64decode(v).hex() if v else ""


def _any_value(v):
    if not v:
        return None
    (k, x), = v.items()
    if k == "arrayValue":
        return [_any_value(i) for i in x.get("values", [])]
    if k == "kvlistValue":
        return {i["key"]: _any_value(i.get("value")) for i in x.get("values", [])}
    if k == "intValue":
        return int(x)
    return x


def _attrs(lst):
    return {a["key"]: _any_value(a.get("value")) for a in (lst or [])}


def _enum(v, table):
    if isinstance(v, str):
        return v.replace("SPAN_KIND_", "").replace("STATUS_CODE_", "")
    return table.get(v or 0, str(v))


def load(path):
    """Return the request as an OTLP/JSON-shaped dict with hex ids."""
    raw = open(path, "rb").read()
    if path.endswith(".gz"):
        raw = gzip.decompress(raw)
    base = path[:-3] if path.endswith(".gz") else path
    if base.endswith(".json"):
        return json.loads(raw.decode("utf-8")), False
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    msg = ExportTraceServiceRequest()
    msg.ParseFromString(raw)
    # json_format renders bytes as base64; OTLP/JSON uses hex: converted below.
    return json_format.MessageToDict(msg, use_integers_for_enums=True), True


def spans_of(path):
    req, ids_b64 = load(path)
    conv = _b64_to_hex if ids_b64 else (lambda s: s or "")
    for rs in req.get("resourceSpans", []):
        res = _attrs(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            scope = ss.get("scope", {})
            for sp in ss.get("spans", []):
                yield {
                    "file": os.path.basename(path),
                    "resource": res,
                    "scope": "%s %s" % (scope.get("name", ""), scope.get("version", "")),
                    "schema_url": ss.get("schemaUrl", ""),
                    "kind": _enum(sp.get("kind"), KINDS),
                    "name": sp.get("name"),
                    "trace_id": conv(sp.get("traceId")),
                    "span_id": conv(sp.get("spanId")),
                    "parent_span_id": conv(sp.get("parentSpanId")),
                    "links": [
                        (conv(l.get("traceId")), conv(l.get("spanId")), _attrs(l.get("attributes")))
                        for l in sp.get("links", [])
                    ],
                    "flags": sp.get("flags", 0),
                    "status": (_enum(sp.get("status", {}).get("code"), STATUS), sp.get("status", {}).get("message", "")),
                    "events": [(e.get("name"), _attrs(e.get("attributes"))) for e in sp.get("events", [])],
                    "attributes": _attrs(sp.get("attributes")),
                    "start": int(sp.get("startTimeUnixNano", 0)),
                }


def files_in(d):
    out = []
    for p in sorted(glob.glob(os.path.join(d, "*"))):
        b = os.path.basename(p)
        if b.endswith(".meta.json"):
            continue
        if any(b.endswith(s) for s in (".bin", ".bin.gz", ".json", ".json.gz")):
            out.append(p)
    return out


def dump(d, out):
    spans = []
    for f in files_in(d):
        meta_path = os.path.join(d, os.path.basename(f).split(".")[0] + ".meta.json")
        meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        out.write("# %s  content-type=%r content-encoding=%r bytes=%s\n" % (
            os.path.basename(f), meta.get("content_type"), meta.get("content_encoding"), meta.get("bytes")))
        spans.extend(spans_of(f))
    out.write("\n")
    by_id = {s["span_id"]: s for s in spans}
    for s in sorted(spans, key=lambda s: s["start"]):
        r = s["resource"]
        parent = s["parent_span_id"]
        pdesc = ""
        if parent:
            p = by_id.get(parent)
            pdesc = " (%s %s %r)" % (p["resource"].get("service.name"), p["kind"], p["name"]) if p else " (not in fixture)"
        out.write("- [%s] service.name=%s service.instance.id=%s kind=%s name=%r\n" % (
            s["file"], r.get("service.name"), r.get("service.instance.id"), s["kind"], s["name"]))
        out.write("    trace_id=%s span_id=%s parent_span_id=%s%s\n" % (
            s["trace_id"], s["span_id"], parent or "-", pdesc))
        out.write("    links=%s flags=0x%x\n" % (s["links"] or "[]", int(s["flags"] or 0)))
        out.write("    status=%s %r\n" % s["status"])
        if s["events"]:
            for name, attrs in s["events"]:
                short = {k: (v if len(str(v)) < 120 else str(v)[:117] + "...") for k, v in attrs.items()}
                out.write("    event %s %s\n" % (name, json.dumps(short, sort_keys=True)))
        out.write("    scope=%s schema_url=%s\n" % (s["scope"], s["schema_url"]))
        out.write("    attributes=%s\n" % json.dumps(s["attributes"], sort_keys=True))
    out.write("\n## resources\n")
    seen = set()
    for s in spans:
        key = json.dumps(s["resource"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.write("  %s\n" % key)
    out.write("\n## span counts per service\n")
    c = collections.Counter(s["resource"].get("service.name") for s in spans)
    for k in sorted(c):
        out.write("  %s: %d\n" % (k, c[k]))
    out.write("\n## span counts per (service, instance, kind, name, status)\n")
    c = collections.Counter(
        (s["resource"].get("service.name"), s["resource"].get("service.instance.id"), s["kind"], s["name"], s["status"][0])
        for s in spans)
    for k in sorted(c):
        out.write("  %s: %d\n" % (" | ".join(map(str, k)), c[k]))
    out.write("\ntotal spans: %d\n" % len(spans))


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    for d in argv[1:]:
        dump(d, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
