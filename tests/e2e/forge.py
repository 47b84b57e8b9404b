#!/usr/bin/env python3
"""forge.py: a compromised publisher who holds the signing key.

Writes wharf's formats independently of wharf (Python standard library, the `zstd` and
`openssl` command-line tools), so that wharf's own tools, which would refuse, are bypassed
and the agent's checks are what a test exercises.

  forge.py archive (--out DIR | --store STORE) --name N --version V --prefix /opt/x
                   --entry SPEC [SPEC...] [--index-omit PATH]... [--index-size PATH=N]...
                   [--index-type PATH=TYPE]...
      Writes a tar holding exactly the SPECs, in order, as zstd frames (the content size in
      each frame header), and its package.json. With --out: DIR/N-V.tar.zst and DIR/N-V.package.json
      (what `wharf pack` writes, for `wharf publish`); with --store: straight into
      STORE/software/N/V/ (N-V.tar.zst and package.json), as if published.
      SPEC (PATH relative to /, e.g. opt/x/bin/a; anything goes, "../x" and "/etc/x" too):
        dir:PATH                  a folder (0755)
        file:PATH:CONTENT         a file (0644) holding CONTENT
        bigfile:PATH:BYTES        a file (0644) of BYTES real bytes (zeros, then a line)
        copy:PATH:LOCAL_FILE      a file (0644) holding the bytes of LOCAL_FILE
        hugefile:PATH:BYTES       a tar header claiming BYTES, followed by only 4 KiB of data
                                  and the end of the stream (no end-of-archive blocks)
        symlink:PATH:TARGET       a symbolic link (0777)
        hardlink:PATH:TARGET      a hard link to TARGET (a tar path such as etc/passwd)
        chardev:PATH  blockdev:PATH  fifo:PATH   device nodes (1,3 / 7,0) and a fifo
        cut                       not an entry: the entries after it go into a new zstd
                                  frame (each frame holds whole entries; default: one frame)
      The index lists every entry honestly (hard links, devices and fifos with their own
      type names, which wharf does not know) unless told otherwise:
        --index-omit PATH     leave the entry out (the archive holds more than the index)
        --index-size PATH=N   declare N bytes for a file instead of its real size
        --index-type PATH=T   declare the entry as type T ("file" disguises a link or device
                              as an empty file)
        --index-archive-size N  declare the archive N bytes long ("+N"/"-N": N more/fewer
                              than it is); the last frame's size is adjusted so that the
                              index stays consistent with itself

  forge.py sign-generation --store DIR --fec F --key K.key [--package N@V...]
                   [--fec-field OTHER] [--number N] [--parent HEX] [--expires-in SECONDS]
                   [--archive-sha N@V=HEX] [--archive-size N@V=BYTES] [--refs-from-index]
      Writes and signs the next generation of F (number = current + 1, parent = sha256 of the
      current generation.json, created now, expires in a day) naming those packages, as
      fecs/F/generations/<n>.json(.sig) and fecs/F/generation.json(.sig). No check at all.
      Package refs come from the store's files: the archive's real size and sha256 (or, with
      --refs-from-index, what package.json claims, as `wharf assign` does), package.json's
      size and sha256, the prefix from package.json.
        --fec-field OTHER   the generation claims to be for OTHER (still written under F)
        --number N          this number instead of current + 1
        --parent HEX        this parent hash instead of the current generation's
        --expires-in S      lifetime in seconds; negative: expired S seconds ago
"""
import argparse
import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

BLOCK = 512
HUGE_DATA = 4096


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def die(message):
    sys.exit(f"forge.py: {message}")


def split_spec(spec):
    if spec == "cut":
        return "cut", "", ""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        die(f"bad entry spec {spec!r}")
    if kind in ("file", "bigfile", "copy", "hugefile", "symlink", "hardlink"):
        path, sep, arg = rest.partition(":")
        if not sep:
            die(f"entry spec {spec!r} needs PATH:ARG")
        return kind, path, arg
    return kind, rest, ""


def tar_header(info):
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padded(data):
    return data + b"\0" * (-len(data) % BLOCK)


def build_tar(specs):
    """The raw tar stream, where each frame starts in it, and one index entry per spec
    (before overrides)."""
    raw = bytearray()
    entries = []
    cuts = [0]
    truncated = False
    for spec in specs:
        if truncated:
            die("nothing can follow a hugefile entry")
        kind, path, arg = split_spec(spec)
        if kind == "cut":
            if len(raw) > cuts[-1]:
                cuts.append(len(raw))
            continue
        info = tarfile.TarInfo(path)
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        data = b""
        entry = {"path": path, "frame": len(cuts) - 1}
        if kind == "dir":
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            entry.update(type="dir", mode=0o755)
        elif kind in ("file", "bigfile", "copy"):
            if kind == "file":
                data = arg.encode()
            elif kind == "bigfile":
                data = b"\0" * (int(arg) - 6) + b"tail!\n"
            else:
                with open(arg, "rb") as f:
                    data = f.read()
            info.size, info.mode = len(data), 0o644
            entry.update(type="file", mode=0o644, size=len(data), sha256=sha256(data))
        elif kind == "hugefile":
            info.size, info.mode = int(arg), 0o644
            data = b"A" * HUGE_DATA
            entry.update(type="file", mode=0o644, size=int(arg), sha256=sha256(data))
        elif kind == "symlink":
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, arg, 0o777
            entry.update(type="symlink", mode=0o777, link=arg)
        elif kind == "hardlink":
            info.type, info.linkname, info.mode = tarfile.LNKTYPE, arg, 0o644
            entry.update(type="hardlink", mode=0o644, link=arg)
        elif kind in ("chardev", "blockdev"):
            info.type = tarfile.CHRTYPE if kind == "chardev" else tarfile.BLKTYPE
            info.devmajor, info.devminor = (1, 3) if kind == "chardev" else (7, 0)
            info.mode = 0o666
            entry.update(type=kind, mode=0o666)
        elif kind == "fifo":
            info.type, info.mode = tarfile.FIFOTYPE, 0o644
            entry.update(type="fifo", mode=0o644)
        else:
            die(f"unknown entry kind {kind!r} in {spec!r}")
        raw += tar_header(info)
        if entry["type"] == "file" or kind == "hugefile":
            entry["data_offset"] = len(raw)
        if kind == "hugefile":
            raw += data  # and nothing more: the header promised far more than the stream holds
            truncated = True
        else:
            raw += padded(data)
        entries.append(entry)
    if not truncated:
        raw += b"\0" * (2 * BLOCK)
    return bytes(raw), cuts, entries


def zstd_frame(raw):
    """`raw` as one zstd frame whose header carries the content size."""
    with tempfile.TemporaryDirectory(prefix="forge-") as tmp:
        path = os.path.join(tmp, "raw.tar")
        with open(path, "wb") as f:
            f.write(raw)
        frame = subprocess.run(["zstd", "-q", "-3", "--content-size", "-c", path],
                               stdout=subprocess.PIPE, check=True).stdout
    # Frame header descriptor: Frame_Content_Size_flag (bits 7-6), Single_Segment (bit 5).
    if frame[:4] != b"\x28\xb5\x2f\xfd":
        die("zstd wrote no zstd frame")
    descriptor = frame[4]
    if (descriptor >> 6) == 0 and not (descriptor & 0x20):
        die("zstd wrote no content size in the frame header")
    return frame


def index_entry(e):
    """An entry in PackageIndexToJson's key order."""
    out = {"path": e["path"], "type": e["type"], "mode": e["mode"]}
    if e["type"] == "file":
        out["size"] = e.get("size", 0)
        out["sha256"] = e.get("sha256", sha256(b""))
        out["data_offset"] = e.get("data_offset", 0)
    if e["type"] in ("symlink", "hardlink"):
        out["link"] = e["link"]
    out["frame"] = e["frame"]
    return out


def cmd_archive(args):
    raw, cuts, entries = build_tar(args.entry)
    frames, archive_bytes = [], b""
    for i, start in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else len(raw)
        frame = zstd_frame(raw[start:end])
        frames.append({"offset": len(archive_bytes), "size": len(frame), "raw_offset": start,
                       "raw_size": end - start, "sha256": sha256(frame)})
        archive_bytes += frame
    sizes = dict(s.split("=", 1) for s in args.index_size)
    types = dict(s.split("=", 1) for s in args.index_type)
    known = {e["path"] for e in entries}
    for path in list(sizes) + list(types) + args.index_omit:
        if path not in known:
            die(f"--index-* names {path!r}, which is not an entry")
    files = []
    for e in entries:
        if e["path"] in args.index_omit:
            continue
        if e["path"] in types:
            e["type"] = types[e["path"]]
            if e["type"] == "file" and "sha256" not in e:  # a link or device disguised
                e.update(size=0, sha256=sha256(b""), data_offset=len(raw))
        if e["path"] in sizes:
            e["size"] = int(sizes[e["path"]])
        files.append(index_entry(e))
    archive = f"{args.name}-{args.version}.tar.zst"
    index = {
        "format": 1, "name": args.name, "version": args.version, "prefix": args.prefix,
        "archive": archive, "archive_size": len(archive_bytes),
        "archive_sha256": sha256(archive_bytes), "zstd_level": 3, "raw_size": len(raw),
        "frames": frames, "files": files,
    }
    if args.index_archive_size is not None:
        text = args.index_archive_size
        declared = len(archive_bytes) + int(text) if text[0] in "+-" else int(text)
        frames[-1]["size"] += declared - index["archive_size"]
        index["archive_size"] = declared
    if args.store:
        out = os.path.join(args.store, "software", args.name, args.version)
        index_path = os.path.join(out, "package.json")
    else:
        out = args.out
        index_path = os.path.join(out, f"{args.name}-{args.version}.package.json")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, archive), "wb") as f:
        f.write(archive_bytes)
    with open(index_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=1, ensure_ascii=False) + "\n")


def key_id(key_path):
    der = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True).stdout
    return sha256(der[-32:])[:16]  # Ed25519 SubjectPublicKeyInfo ends with the raw key


def sign(key_path, data):
    with tempfile.NamedTemporaryFile(prefix="forge-") as f:
        f.write(data)
        f.flush()
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key_path,
                              "-in", f.name], stdout=subprocess.PIPE, check=True).stdout
    if len(sig) != 64:
        die("openssl did not make an Ed25519 signature")
    return f"ed25519 {key_id(key_path)} {base64.b64encode(sig).decode()}\n"


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def overrides(items, what):
    out = {}
    for item in items:
        spec, sep, value = item.partition("=")
        if not sep:
            die(f"--{what} wants N@V=VALUE, not {item!r}")
        out[spec] = value
    return out


def write_bytes(path, data):
    tmp = path + ".forge-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def cmd_sign(args):
    fec_dir = os.path.join(args.store, "fecs", args.fec)
    os.makedirs(os.path.join(fec_dir, "generations"), exist_ok=True)
    current = os.path.join(fec_dir, "generation.json")
    number, parent = 1, ""
    if os.path.exists(current):
        with open(current, "rb") as f:
            data = f.read()
        number, parent = json.loads(data)["number"] + 1, sha256(data)
    if args.number is not None:
        number = args.number
    if args.parent is not None:
        parent = args.parent
    shas = overrides(args.archive_sha, "archive-sha")
    sizes = overrides(args.archive_size, "archive-size")
    packages = []
    for spec in sorted(args.package, key=lambda s: s.split("@")[0]):
        name, _, version = spec.partition("@")
        folder = f"software/{name}/{version}/"
        with open(os.path.join(args.store, folder, "package.json"), "rb") as f:
            index_raw = f.read()
        index = json.loads(index_raw)
        archive_path = os.path.join(args.store, folder, index["archive"])
        if args.refs_from_index:
            archive_size, archive_sha = index["archive_size"], index["archive_sha256"]
        else:
            with open(archive_path, "rb") as f:
                archive = f.read()
            archive_size, archive_sha = len(archive), sha256(archive)
        packages.append({
            "name": name, "version": version, "prefix": index["prefix"],
            "archive": {"path": folder + index["archive"],
                        "size": int(sizes.get(spec, archive_size)),
                        "sha256": shas.get(spec, archive_sha)},
            "index": {"path": folder + "package.json", "size": len(index_raw),
                      "sha256": sha256(index_raw)}})
    now = int(time.time())
    if args.expires_in > 0:
        created, expires = now, now + args.expires_in
    else:  # already expired: born before it ran out
        expires = now + args.expires_in
        created = expires - 3600
    generation = {"format": 1, "fec": args.fec_field or args.fec, "number": number,
                  "parent": parent, "created": stamp(created), "expires": stamp(expires),
                  "packages": packages}
    data = (json.dumps(generation, indent=2, ensure_ascii=False) + "\n").encode()
    signature = sign(args.key, data).encode()
    numbered = os.path.join(fec_dir, "generations", f"{number}.json")
    # As the store does: the numbered files first, generation.json last.
    for path in (numbered, current):
        write_bytes(path + ".sig", signature)
        write_bytes(path, data)
    print(f"forged generation {number} of {args.fec}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("archive", help="a tar of exactly the given entries, and its index")
    where = a.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="folder for N-V.tar.zst and N-V.package.json")
    where.add_argument("--store", help="store to write software/N/V/ into")
    a.add_argument("--name", required=True)
    a.add_argument("--version", required=True)
    a.add_argument("--prefix", required=True)
    a.add_argument("--entry", nargs="+", action="extend", required=True, metavar="SPEC")
    a.add_argument("--index-omit", nargs="+", action="extend", default=[], metavar="PATH")
    a.add_argument("--index-size", nargs="+", action="extend", default=[], metavar="PATH=N")
    a.add_argument("--index-type", nargs="+", action="extend", default=[], metavar="PATH=TYPE")
    a.add_argument("--index-archive-size", metavar="BYTES")
    a.set_defaults(run=cmd_archive)
    s = sub.add_parser("sign-generation", help="sign the next generation of a FEC, unchecked")
    s.add_argument("--store", required=True)
    s.add_argument("--fec", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--package", nargs="+", action="extend", default=[], metavar="N@V")
    s.add_argument("--fec-field")
    s.add_argument("--number", type=int)
    s.add_argument("--parent")
    s.add_argument("--expires-in", type=int, default=86400)
    s.add_argument("--archive-sha", nargs="+", action="extend", default=[], metavar="N@V=HEX")
    s.add_argument("--archive-size", nargs="+", action="extend", default=[], metavar="N@V=BYTES")
    s.add_argument("--refs-from-index", action="store_true",
                   help="pin the archive size and sha256 package.json claims")
    s.set_defaults(run=cmd_sign)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
