"""sam_pbjson against protobuf's reference JSON mapping (Python's google.protobuf.json_format).

For every event payload message of the catalog (sam_catalog.h), random messages — every
field kind that message has, at its limits (int64 extremes, uint64 max, empty and non-ASCII
strings, bytes that are not text, enums, lists, nested messages) — are packed by Python and
written as JSON by sam_pbjson (`sam_pbjson_selftest encode`), which must equal what
json_format writes, with and without defaults and in both naming styles; and json_format's
JSON, in both naming styles, read by sam_pbjson (`sam_pbjson_selftest decode`) must pack to
the same message. The random seed is fixed: a failure is repeatable.
"""
import importlib
import json
import os
import random
import subprocess

import samtest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as FD

TOOL = os.path.join(samtest.BIN, "sam_pbjson_selftest")
MODULES = ["registry", "status", "grants", "notify"]


def message_classes():
    """Full name → Python class of every samordna.v1 message."""
    out = {}
    for m in MODULES:
        mod = importlib.import_module(f"samordna.v1.{m}_pb2")
        for name in mod.DESCRIPTOR.message_types_by_name:
            cls = getattr(mod, name)
            out[cls.DESCRIPTOR.full_name] = cls
    return out


def scalar(f, rnd):
    t = f.type
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rnd.choice([0, -1, 1, 2**63 - 1, -2**63, 150000000])
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rnd.choice([0, 1, 2**64 - 1, 1575072000000])
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return rnd.choice([0, -5, 2**31 - 1, -2**31])
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rnd.choice([0, 2019, 2**32 - 1])
    if t == FD.TYPE_BOOL:
        return rnd.choice([True, False])
    if t == FD.TYPE_STRING:
        return rnd.choice(["", "halden", "Østfold «Saman» – første år", 'a"b\\c\n\t', "\u2028/é"])
    if t == FD.TYPE_BYTES:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(7)))
    if t == FD.TYPE_ENUM:
        return rnd.choice(f.enum_type.values).number
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return rnd.choice([0.0, 0.5, -2.25])
    raise AssertionError(f"no value for {f.full_name}")


def fill(m, rnd, depth=0):
    for f in m.DESCRIPTOR.fields:
        if rnd.random() < 0.25:
            continue
        repeated = f.label == FD.LABEL_REPEATED
        if f.type == FD.TYPE_MESSAGE:
            if depth > 4 or f.message_type.full_name.startswith("google.protobuf."):
                continue
            if repeated:
                for _ in range(rnd.randrange(3)):
                    fill(getattr(m, f.name).add(), rnd, depth + 1)
            else:
                fill(getattr(m, f.name), rnd, depth + 1)
                getattr(m, f.name).SetInParent()
        elif repeated:
            getattr(m, f.name).extend(scalar(f, rnd) for _ in range(rnd.randrange(3)))
        else:
            setattr(m, f.name, scalar(f, rnd))


def run(*args, data=b""):
    r = subprocess.run([TOOL, *args], input=data, capture_output=True, timeout=30 * samtest.SLOW)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def test_the_mapping_is_protobufs_own_for_every_payload():
    classes = message_classes()
    rc, out, err = run("types")
    assert rc == 0, err
    types = sorted(set(out.decode().split()))
    assert len(types) >= 20, types
    rnd = random.Random(18)
    compared = 0
    for name in types:
        cls = classes[name]
        for _ in range(8):
            m = cls()
            fill(m, rnd)
            packed = m.SerializeToString()
            for flags, defaults, proto_names in ((0, False, False), (1, True, False),
                                                 (2, False, True), (3, True, True)):
                rc, out, err = run("encode", name, str(flags), data=packed)
                assert rc == 0, (name, err)
                ref = json_format.MessageToDict(m, including_default_value_fields=defaults,
                                                preserving_proto_field_name=proto_names)
                assert json.loads(out) == ref, (name, flags, out, ref)
                compared += 1
            for proto_names in (False, True):
                text = json_format.MessageToJson(m, preserving_proto_field_name=proto_names)
                rc, out, err = run("decode", name, data=text.encode())
                assert rc == 0, (name, err, text)
                back = cls()
                back.ParseFromString(out)
                assert back == m, (name, text)
                compared += 1
    assert compared > 40 * len(types), compared


def test_refusals_name_the_field_as_written():
    rc, _, err = run("decode", "samordna.v1.Award",
                     data=b'{"funders": [{}, {"amountOre": "12 kr"}]}')
    assert rc == 1 and err.startswith("funders[1].amountOre: expected a string of digits"), err
    rc, _, err = run("decode", "samordna.v1.Award", data=b'{"amuont": 1}')
    assert rc == 1 and "unknown field 'amuont' of samordna.v1.Award" in err, err
    rc, _, err = run("decode", "samordna.v1.Agency", data=b'{"kind": "KOMMUNE"}')
    assert rc == 1 and "unknown enum value 'KOMMUNE' for samordna.v1.AgencyKind: one of " \
        "AGENCY_KIND_UNSPECIFIED" in err, err


if __name__ == "__main__":
    samtest.main()
