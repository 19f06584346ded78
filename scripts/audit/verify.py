#!/usr/bin/env python3
"""An independent verifier of `ledger audit export` folders: Python 3 standard library
only, written from docs/audit-format.md alone, so a receiver can check an export
without our code.

    verify.py DIR [--pubkey KEY.pub] [--previous OLD_DIR]
    verify.py --self-test

Checks, listing every failure (never stopping at the first):
  - the sha256 of every file manifest.json lists, and no unlisted file;
  - records.bin: framing, each record's SHA-256 over its bytes chained from the one
    before (from the manifest's chain.prev_hash), the last hash, the count, and the
    RFC 9162 Merkle root over the records;
  - the rows (rows.jsonl or rows.csv): each row_hash (SHA-256 of the row's RFC 8785
    canonical JSON without row_hash), each prev_row_hash link, seqs ascending inside
    the range, every order following an approved verdict of its row (or its row's
    kill-switch trip, or the close at the end of the data), every fill of a known
    order, tick times that run forward, and the manifest's counts;
  - with --pubkey: the checkpoint.txt signature (C2SP signed note, Ed25519, RFC 8032
    verification below) and that it signs this tree and this manifest;
  - with --previous: the RFC 9162 consistency proof that this export extends OLD_DIR.
It does not decode the records' bincode bodies, so it does not fold the rows again
from them: `ledger audit verify` does that.

Exit status: 0 all checks pass, 1 failures (each printed), 2 unusable input.
"""

import base64
import csv
import hashlib
import json
import os
import sys

FORMAT = "ledger-audit-export/1"
ZERO = "0" * 64


# --- RFC 8785 canonical JSON ---------------------------------------------------------
# The rows hold strings, integers, booleans, null, lists and objects with ASCII keys,
# never floats: for those, sorted keys, no whitespace, and JSON's minimal escaping
# (\" \\ \b \f \n \r \t, other controls as \u00xx lowercase, everything else as UTF-8)
# are RFC 8785, and that is what json.dumps writes with these arguments.
def canonical(value):
    def check(v):
        if isinstance(v, float):
            raise ValueError("a float in a row (rows hold none)")
        if isinstance(v, dict):
            for x in v.values():
                check(x)
        if isinstance(v, list):
            for x in v:
                check(x)

    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- RFC 9162 Merkle trees -------------------------------------------------------------
def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class Tree:
    """The tree head of leaves pushed in order, holding one hash per bit of the size."""

    def __init__(self):
        self.stack = []  # (size, hash), sizes strictly decreasing powers of two
        self.size = 0

    def push(self, data):
        node = (1, leaf_hash(data))
        while self.stack and self.stack[-1][0] == node[0]:
            size, left = self.stack.pop()
            node = (size * 2, node_hash(left, node[1]))
        self.stack.append(node)
        self.size += 1

    def root(self):
        if not self.stack:
            return hashlib.sha256(b"").digest()
        acc = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 section 2.1.4.2."""
    if first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


# --- Ed25519 verification (RFC 8032 section 5.1.7, after its section 6 reference code) -
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 % P == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _add(a, b):
    A = (a[1] - a[0]) * (b[1] - b[0]) % P
    B = (a[1] + a[0]) * (b[1] + b[0]) % P
    C = 2 * a[3] * b[3] * D % P
    Dd = 2 * a[2] * b[2] % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F, G * H, F * G, E * H)


def _mul(s, point):
    result = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            result = _add(result, point)
        point = _add(point, point)
        s >>= 1
    return result


def _equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
_GX = _recover_x(_GY, 0)
BASE = (_GX, _GY, 1, _GX * _GY % P)


def ed25519_verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    A = _decompress(public)
    R = _decompress(signature[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % Q
    return _equal(_mul(s, BASE), _add(R, _mul(h, A)))


# --- C2SP signed notes and checkpoints ---------------------------------------------------
class Unusable(Exception):
    """Input that cannot be checked at all (exit 2)."""


def parse_verifier_key(text):
    """`NAME+ID+BASE64(0x01 || public key)` -> (name, key id, public key)."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or len(parts[1]) != 8:
        raise Unusable("a public key is NAME+ID+BASE64")
    name, key_id, b64 = parts
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise Unusable("the public key is not an Ed25519 (0x01) key")
    expected = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if expected.hex() != key_id:
        raise Unusable("the public key's id does not match its key")
    return name, expected, raw[1:]


def open_note(note, key):
    """The signed text of `note` if a signature by `key` verifies over it, else an error."""
    name, key_id, public = key
    at = note.rfind("\n\n")
    if at < 0:
        return None, "not a signed note: no blank line before the signatures"
    text, signatures = note[: at + 1], note[at + 2 :]
    if not signatures.endswith("\n"):
        return None, "not a signed note: the signature lines do not end in a newline"
    known = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            return None, "not a signature line: %r" % line
        signer, _, b64 = line[2:].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            return None, "a signature that is not base64"
        if signer != name or raw[:4] != key_id:
            continue
        known = True
        if not ed25519_verify(public, text.encode("utf-8"), raw[4:]):
            return None, "the signature of %s does not verify over the note" % name
    if not known:
        return None, "no signature by key %s" % name
    return text, None


def parse_checkpoint(text):
    lines = text[:-1].split("\n") if text.endswith("\n") else None
    if not lines or len(lines) < 3 or not lines[1].isdigit():
        return None
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        return None
    return {"origin": lines[0], "size": int(lines[1]), "root": root, "extensions": lines[3:]}


# --- the export --------------------------------------------------------------------------
def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder):
    path = os.path.join(folder, "manifest.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        manifest = json.loads(raw)
    except (OSError, ValueError) as e:
        raise Unusable("%s: %s" % (path, e))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Unusable("%s is not a %s manifest" % (path, FORMAT))
    return manifest, raw


def check_files(folder, manifest, fail):
    files = manifest.get("files", {})
    for name, digest in sorted(files.items()):
        if "/" in name or "\\" in name or name.startswith("."):
            fail("manifest.json: file name %r is not a plain name" % name)
            continue
        try:
            actual = sha256_file(os.path.join(folder, name))
        except OSError as e:
            fail("%s: cannot be read (%s)" % (name, e))
            continue
        if actual != digest:
            fail("%s: sha256 %s, the manifest says %s" % (name, actual, digest))
    for name in sorted(os.listdir(folder)):
        if name not in ("manifest.json", "checkpoint.txt") and name not in files:
            fail("%s: a file the manifest does not list" % name)


def record_hash(record, seq, prev):
    """The hash a record must carry at `seq` after one hashed `prev` (docs/audit-format.md)."""
    version = record[0]
    if version == 1:
        if record[1:33] != prev:
            return None
        return hashlib.sha256(record[:-32]).digest()
    # Format 2, and the formats after it (a new schema takes a new format byte; the
    # hash keeps format 2's layout, docs/events.md): version || prev || seq || body.
    return hashlib.sha256(bytes([version]) + prev + seq.to_bytes(8, "big") + record[1:-32]).digest()


def check_records(folder, manifest, fail):
    """Returns (count, root) of the records as read."""
    tree = Tree()
    first = manifest["range"]["first_seq"]
    prev = bytes.fromhex(manifest["chain"]["prev_hash"])
    last_hash = None
    path = os.path.join(folder, "records.bin")
    try:
        f = open(path, "rb")
    except OSError as e:
        fail("records.bin: cannot be read (%s)" % e)
        return 0, tree.root()
    with f:
        while True:
            prefix = f.read(4)
            if not prefix:
                break
            if len(prefix) < 4:
                fail("records.bin: cut inside a length prefix after record %d" % tree.size)
                break
            length = int.from_bytes(prefix, "little")
            record = f.read(length)
            if len(record) < length:
                fail("records.bin: cut inside record %d" % (tree.size + 1))
                break
            tree.push(record)
            seq = first + tree.size - 1
            if len(record) < 34 or record_hash(record, seq, prev) != record[-32:]:
                fail("records.bin record %d (seq %d): its hash does not match its bytes chained from the record before" % (tree.size, seq))
            prev = record[-32:]
            last_hash = prev
    count = tree.size
    counts = manifest["counts"]
    if count != counts["records"] or count != manifest["merkle"]["tree_size"]:
        fail("records.bin: %d records, the manifest says %d (tree size %d)" % (count, counts["records"], manifest["merkle"]["tree_size"]))
    if count and first + count - 1 != manifest["range"]["last_seq"]:
        fail("records.bin: seqs %d..=%d, the manifest says the range ends at %d" % (first, first + count - 1, manifest["range"]["last_seq"]))
    if last_hash is None or last_hash.hex() != manifest["chain"]["last_hash"]:
        fail("records.bin: the last record's hash is not the manifest's chain.last_hash")
    if tree.root().hex() != manifest["merkle"]["root"]:
        fail("records.bin: the Merkle root is %s, the manifest says %s" % (tree.root().hex(), manifest["merkle"]["root"]))
    return count, tree.root()


def read_rows(folder, manifest, fail):
    """Yields (line number, row dict or None) of the row file."""
    fmt = manifest["filters"]["format"]
    name = {"jsonl": "rows.jsonl", "csv": "rows.csv"}.get(fmt)
    if name is None:
        fail("manifest.json: unknown row format %r" % fmt)
        return
    path = os.path.join(folder, name)
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as e:
        fail("%s: cannot be read (%s)" % (name, e))
        return
    with f:
        if fmt == "jsonl":
            for number, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("not an object")
                except ValueError as e:
                    fail("%s line %d: not a JSON object (%s)" % (name, number, e))
                    row = None
                yield name, number, row
            return
        kinds = [(c["name"], c["type"]) for c in manifest["columns"]]
        reader = csv.reader(f)
        header = next(reader, None)
        if header != [n for n, _ in kinds]:
            fail("%s: the header row is not the manifest's columns" % name)
        for cells in reader:
            number = reader.line_num
            if len(cells) != len(kinds):
                fail("%s line %d: %d cells for %d columns" % (name, number, len(cells), len(kinds)))
                yield name, number, None
                continue
            row = {}
            try:
                for (column, kind), cell in zip(kinds, cells):
                    # An empty text or JSON cell is a member left out of the row.
                    if kind in ("string", "json") and cell == "":
                        continue
                    if kind == "string":
                        row[column] = cell
                    elif kind == "integer":
                        row[column] = int(cell)
                    else:
                        row[column] = json.loads(cell)
            except ValueError as e:
                fail("%s line %d: column %s: %s" % (name, number, column, e))
                row = None
            yield name, number, row


def check_rows(folder, manifest, fail):
    first_seq, last_seq = manifest["range"]["first_seq"], manifest["range"]["last_seq"]
    prev = ZERO
    last_row_seq = 0
    last_tick = ""
    known = set(manifest["start_state"]["working"].keys())
    counts = {"rows": 0, "events": 0, "by_row_kind": {}, "by_verdict": {}, "orders": 0, "fills": 0}
    for name, number, row in read_rows(folder, manifest, fail):
        if row is None:
            continue
        at = "%s line %d (seq %s)" % (name, number, row.get("first_seq"))
        stored = row.pop("row_hash", None)
        try:
            if hashlib.sha256(canonical(row)).hexdigest() != stored:
                fail("%s: row_hash does not match the row's contents" % at)
        except ValueError as e:
            fail("%s: %s" % (at, e))
        if row.get("prev_row_hash") != prev:
            fail("%s: prev_row_hash does not link to the row before (a row removed, added or moved)" % at)
        prev = stored
        seqs = row.get("event_seqs", [])
        if not seqs or any(not isinstance(s, int) for s in seqs):
            fail("%s: no event_seqs" % at)
            seqs = []
        if any(a >= b for a, b in zip(seqs, seqs[1:])):
            fail("%s: event_seqs are not ascending" % at)
        if seqs:
            if seqs[0] <= last_row_seq:
                fail("%s: seq %d is not after the previous row's last seq %d" % (at, seqs[0], last_row_seq))
            if seqs[0] < first_seq or seqs[-1] > last_seq:
                fail("%s: seqs %d..=%d outside the range %d..=%d" % (at, seqs[0], seqs[-1], first_seq, last_seq))
            if row.get("first_seq") != seqs[0] or row.get("last_seq") != seqs[-1]:
                fail("%s: first_seq/last_seq are not its events' first and last" % at)
            last_row_seq = seqs[-1]
        if row.get("ts_recorded", "") > row.get("ts_recorded_last", ""):
            fail("%s: its events were recorded out of time order" % at)
        kind = row.get("row_kind", "")
        if row.get("tick_kind"):
            if row["ts_event"] < last_tick:
                fail("%s: tick time %s is before the previous cycle's %s" % (at, row["ts_event"], last_tick))
            last_tick = row["ts_event"]
        trip = (row.get("kill_switch") or {}).get("seq")
        for order in row.get("orders", []):
            cause, origin = order.get("cause_seq"), order.get("origin")
            ok = (
                (origin == "verdict" and row.get("verdict") == "approved" and cause is not None and cause == row.get("verdict_seq"))
                or (origin == "kill_switch" and cause is not None and cause == trip)
                or (origin == "close_at_end" and cause is None)
                or (origin == "protective_exit" and order.get("protects") in known)
            )
            if not ok:
                fail("%s: order %s does not follow an approved verdict, a kill-switch trip, an entry it protects or the close at the end" % (at, order.get("client_order_id")))
            known.add(order.get("client_order_id"))
        for fill in row.get("fills", []):
            if fill.get("client_order_id") not in known:
                fail("%s: fill of order %s that the trail does not hold" % (at, fill.get("client_order_id")))
        counts["rows"] += 1
        counts["events"] += len(seqs)
        counts["by_row_kind"][kind] = counts["by_row_kind"].get(kind, 0) + 1
        if kind == "cycle":
            verdict = row.get("verdict") or "none"
            counts["by_verdict"][verdict] = counts["by_verdict"].get(verdict, 0) + 1
        counts["orders"] += len(row.get("orders", []))
        counts["fills"] += len(row.get("fills", []))
    if prev != manifest["last_row_hash"]:
        fail("rows: the last row's hash is not the manifest's last_row_hash (rows cut off the end?)")
    stated = dict(manifest["counts"])
    stated.pop("records", None)
    if stated != counts:
        fail("manifest.json: counts %s but the rows give %s" % (json.dumps(stated, sort_keys=True), json.dumps(counts, sort_keys=True)))
    return counts["rows"]


def check_checkpoint(folder, manifest_raw, manifest, key, count, root, fail):
    try:
        with open(os.path.join(folder, "checkpoint.txt"), encoding="utf-8") as f:
            note = f.read()
    except (OSError, ValueError) as e:
        fail("checkpoint.txt: cannot be read (%s); --pubkey needs a signed export" % e)
        return
    text, error = open_note(note, key)
    if error:
        fail("checkpoint.txt: " + error)
        return
    checkpoint = parse_checkpoint(text)
    if checkpoint is None:
        fail("checkpoint.txt: not a checkpoint (origin, size, base64 root)")
        return
    if checkpoint["origin"] != manifest["merkle"]["origin"]:
        fail("checkpoint.txt: origin %r is not the manifest's" % checkpoint["origin"])
    if checkpoint["size"] != count or checkpoint["root"] != root:
        fail("checkpoint.txt: signs %d records with root %s, the records give %d with root %s" % (checkpoint["size"], checkpoint["root"].hex(), count, root.hex()))
    if "manifest-sha256 " + hashlib.sha256(manifest_raw).hexdigest() not in checkpoint["extensions"]:
        fail("checkpoint.txt: does not sign this manifest.json (its sha256 differs)")


def verify(folder, pubkey=None, previous=None):
    """Returns the list of failures; raises Unusable for input that cannot be checked."""
    if not os.path.isdir(folder):
        raise Unusable("%s is not a folder" % folder)
    manifest, raw = read_manifest(folder)
    failures = []
    fail = failures.append
    try:
        check_files(folder, manifest, fail)
        count, root = check_records(folder, manifest, fail)
        rows = check_rows(folder, manifest, fail)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise Unusable("manifest.json lacks or garbles a field: %r" % (e,))
    key = None
    if pubkey:
        try:
            with open(pubkey, encoding="utf-8") as f:
                key = parse_verifier_key(f.read())
        except (OSError, ValueError) as e:
            raise Unusable("%s: %s" % (pubkey, e))
        check_checkpoint(folder, raw, manifest, key, count, root, fail)
    if previous:
        old, old_raw = read_manifest(previous)
        old_failures = []
        old_count, old_root = check_records(previous, old, old_failures.append)
        if key:
            check_checkpoint(previous, old_raw, old, key, old_count, old_root, old_failures.append)
        failures.extend("previous export %s: %s" % (previous, f) for f in old_failures)
        proof = manifest.get("consistency")
        if old["merkle"]["origin"] != manifest["merkle"]["origin"]:
            fail("--previous: another tree (%s; this export is %s)" % (old["merkle"]["origin"], manifest["merkle"]["origin"]))
        elif not proof:
            fail("manifest.json: no consistency proof (export with --previous to make one)")
        else:
            if proof["previous_tree_size"] != old["merkle"]["tree_size"] or proof["previous_root"] != old["merkle"]["root"]:
                fail("manifest.json: the consistency proof is from another tree than the previous export's")
            hashes = [bytes.fromhex(h) for h in proof["proof"]]
            if not verify_consistency(old["merkle"]["tree_size"], count, bytes.fromhex(old["merkle"]["root"]), root, hashes):
                fail("the consistency proof fails: this export does not extend the previous one")
    return failures, rows, count, root


def self_test():
    """Known answers: Go's sumdb/note example, RFC 9162's empty tree, a consistency proof."""
    key = parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    note = text + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    assert open_note(note, key) == (text, None), "Go's signed note verifies"
    assert open_note(note.replace("problem,", "problem;"), key)[1], "a changed note does not"
    assert Tree().root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    leaves = [b"leaf %d" % i for i in range(7)]
    trees = []
    for n in range(8):
        t = Tree()
        for leaf in leaves[:n]:
            t.push(leaf)
        trees.append(t.root())

    def mth(items):
        if len(items) == 1:
            return leaf_hash(items[0])
        k = 1
        while k * 2 < len(items):
            k *= 2
        return node_hash(mth(items[:k]), mth(items[k:]))

    assert trees[7] == mth(leaves)
    # RFC 9162 2.1.5: PROOF(3, D[7]) = [c, d, g, l].
    proof = [leaf_hash(leaves[2]), leaf_hash(leaves[3]), mth(leaves[0:2]), mth(leaves[4:7])]
    assert verify_consistency(3, 7, trees[3], trees[7], proof)
    assert not verify_consistency(3, 7, trees[3], trees[7], proof[::-1])
    print("self-test ok")


def main(argv):
    args = argv[1:]
    if args == ["--self-test"]:
        self_test()
        return 0
    pubkey = previous = None
    folder = None
    while args:
        arg = args.pop(0)
        if arg in ("--pubkey", "--previous") and args:
            value = args.pop(0)
            if arg == "--pubkey":
                pubkey = value
            else:
                previous = value
        elif folder is None and not arg.startswith("--"):
            folder = arg
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
    if folder is None:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        failures, rows, count, root = verify(folder, pubkey, previous)
    except Unusable as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if failures:
        print("FAILED: %d problem(s) in %s" % (len(failures), folder))
        for failure in failures:
            print("  " + failure)
        return 1
    print("ok: %s verifies: %d rows, %d records, Merkle root %s%s%s" % (
        folder, rows, count, root.hex(),
        ", checkpoint signature verified" if pubkey else "",
        ", extends %s" % previous if previous else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
