#!/usr/bin/env python3
"""A compromised publisher who holds the signing key: writes wharf archives, indexes and
signed generations with nothing but the Python standard library, zstd and openssl, so that
the agent's own checks are what the hostile tests exercise (wharf's tools would refuse).

  forge_tool.py archive OUT NAME VERSION PREFIX SPEC... [--omit PATH]... [--size PATH=N]...
      SPEC: dir:PATH  file:PATH:CONTENT  symlink:PATH:TARGET  hardlink:PATH:TARGET
            chardev:PATH  (PATH relative to /, e.g. opt/evil/x)
  forge_tool.py sign STORE FEC KEY NAME@VERSION... [--fec-field F] [--number N]
      [--expires-in SECONDS]
"""
import argparse, base64, hashlib, io, json, os, subprocess, sys, tarfile, time


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def build_tar(specs):
    buf = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for spec in specs:
            kind, rest = spec.split(":", 1)
            path, _, arg = rest.partition(":")
            info = tarfile.TarInfo(path)
            info.mtime = 0
            data = b""
            entry = {"path": path, "mode": 0o644, "frame": 0}
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                entry.update(type="dir", mode=0o755)
            elif kind == "file":
                data = arg.encode()
                info.size, info.mode = len(data), 0o644
                entry.update(type="file", size=len(data), sha256=sha256(data))
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, arg, 0o777
                entry.update(type="symlink", mode=0o777, link=arg)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, arg
                entry.update(type="file", size=0, sha256=sha256(b""))
            elif kind == "chardev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                entry.update(type="file", size=0, sha256=sha256(b""))
            else:
                sys.exit(f"unknown spec {spec}")
            tar.addfile(info, io.BytesIO(data) if data else None)
            entries.append(entry)
    return buf.getvalue(), entries


def cmd_archive(args):
    raw, entries = build_tar(args.spec)
    frame = subprocess.run(["zstd", "-q", "-c", "-3", f"--stream-size={len(raw)}"], input=raw, stdout=subprocess.PIPE,
                           check=True).stdout
    sizes = dict(s.split("=", 1) for s in args.size)
    files = []
    for e in entries:
        if e["path"] in args.omit:
            continue
        if e["path"] in sizes:
            e["size"] = int(sizes[e["path"]])
        files.append(e)
    index = {
        "format": 1, "name": args.name, "version": args.version, "prefix": args.prefix,
        "archive": f"{args.name}-{args.version}.tar.zst", "archive_size": len(frame),
        "archive_sha256": sha256(frame), "zstd_level": 3, "raw_size": len(raw),
        "frames": [{"offset": 0, "size": len(frame), "raw_offset": 0, "raw_size": len(raw),
                    "sha256": sha256(frame)}],
        "files": files,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, index["archive"]), "wb") as f:
        f.write(frame)
    with open(os.path.join(args.out, "package.json"), "w") as f:
        json.dump(index, f, indent=1)


def key_id(key_path):
    der = subprocess.run(["openssl", "pkey", "-in", key_path, "-pubout", "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True).stdout
    return sha256(der[-32:])[:16]


def sign(key_path, data):
    tmp = f"/tmp/forge-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key_path, "-in", tmp],
                         stdout=subprocess.PIPE, check=True).stdout
    os.unlink(tmp)
    return f"ed25519 {key_id(key_path)} {base64.b64encode(sig).decode()}\n"


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def cmd_sign(args):
    fec_dir = os.path.join(args.store, "fecs", args.fec)
    os.makedirs(os.path.join(fec_dir, "generations"), exist_ok=True)
    current = os.path.join(fec_dir, "generation.json")
    number, parent = 1, ""
    if os.path.exists(current):
        raw = open(current, "rb").read()
        number, parent = json.loads(raw)["number"] + 1, sha256(raw)
    if args.number is not None:
        number = args.number
    packages = []
    for spec in sorted(args.package):
        name, version = spec.split("@")
        folder = f"software/{name}/{version}/"
        index_raw = open(os.path.join(args.store, folder, "package.json"), "rb").read()
        index = json.loads(index_raw)
        packages.append({
            "name": name, "version": version, "prefix": index["prefix"],
            "archive": {"path": folder + index["archive"], "size": index["archive_size"],
                        "sha256": index["archive_sha256"]},
            "index": {"path": folder + "package.json", "size": len(index_raw),
                      "sha256": sha256(index_raw)}})
    now = int(time.time())
    created = now if args.expires_in > 0 else now + args.expires_in - 60
    generation = {"format": 1, "fec": args.fec_field or args.fec, "number": number,
                  "parent": parent, "created": stamp(created),
                  "expires": stamp(now + args.expires_in), "packages": packages}
    data = (json.dumps(generation, indent=2) + "\n").encode()
    signature = sign(args.key, data)
    for path in (os.path.join(fec_dir, "generations", f"{number}.json"), current):
        with open(path + ".sig", "w") as f:
            f.write(signature)
        with open(path, "wb") as f:
            f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("archive")
    a.add_argument("out"); a.add_argument("name"); a.add_argument("version"); a.add_argument("prefix")
    a.add_argument("spec", nargs="+")
    a.add_argument("--omit", action="append", default=[])
    a.add_argument("--size", action="append", default=[])
    a.set_defaults(run=cmd_archive)
    s = sub.add_parser("sign")
    s.add_argument("store"); s.add_argument("fec"); s.add_argument("key")
    s.add_argument("package", nargs="*")
    s.add_argument("--fec-field")
    s.add_argument("--number", type=int)
    s.add_argument("--expires-in", type=int, default=86400)
    s.set_defaults(run=cmd_sign)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
