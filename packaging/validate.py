#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check the Windows release files of a build: the ZIP and the Scoop and
winget manifests that the `manifests` target made from it.

    python3 packaging/validate.py BUILD_DIR [--schemas DIR] [--run-exe WINE]

- every manifest validates against the official schema in DIR (default: the
  shared/packaging-schemas folder next to the repository), read with
  python3-jsonschema and python3-yaml; a missing schema folder is an error
- every version in them is the project's (project() in CMakeLists.txt) and a
  YAML string, every hash is the SHA-256 of the ZIP on disk, every URL the same
- the ZIP holds iocptool.exe, LICENSE.txt, README.md and the PowerShell
  completion script _iocptool.ps1 at its top, and the manual as iocptool.html exactly when man/iocptool.1 exists; the nested
  installer path of the winget manifest and Scoop's bin are in it
- the templates in packaging/ hard-code no version or hash
- with --run-exe, the packaged iocptool.exe is run (through wine) and must
  print the version and platform: windows-x86_64

Exit status 0 when all hold; every failure is printed.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    sys.exit(f"validate: {e.name} is missing (Debian: apt-get install python3-jsonschema python3-yaml)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_ID = "iocptool.iocptool"
MANIFEST_VERSION = "1.12.0"

errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)
    return cond


def project_version():
    with open(os.path.join(REPO, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(\s*iocptool\s+VERSION\s+([0-9][0-9.]*)", f.read())
    if not m:
        sys.exit("validate: no project(iocptool VERSION ...) in CMakeLists.txt")
    return m.group(1)


def load_schema(schemas, name):
    path = os.path.join(schemas, name)
    if not os.path.isfile(path):
        sys.exit(f"validate: schema {path} is missing (see {schemas}/README.md)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validate(doc, schema, what):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    for err in sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "(top)"
        errors.append(f"{what}: {where}: {err.message}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", help="a configured Windows build after `cmake --build BUILD --target manifests`")
    ap.add_argument("--schemas", default=os.path.join(os.path.dirname(REPO), "shared", "packaging-schemas"))
    ap.add_argument("--run-exe", metavar="RUNNER", help="run the packaged iocptool.exe with this (wine)")
    args = ap.parse_args()

    schemas = os.path.abspath(args.schemas)
    if not os.path.isdir(schemas):
        sys.exit(f"validate: the schema folder {schemas} does not exist; it sits next to the "
                 "repository (shared/packaging-schemas), or give --schemas DIR")
    version = project_version()
    zip_name = f"iocptool-{version}-windows-x86_64.zip"
    zip_path = os.path.join(args.build, zip_name)
    if not os.path.isfile(zip_path):
        sys.exit(f"validate: {zip_path} does not exist: run `cmake --build {args.build} --target manifests`")
    with open(zip_path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()

    # ---- the ZIP ----
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        check(z.testzip() is None, f"{zip_name}: a member is corrupt")
    want = {"iocptool.exe", "LICENSE.txt", "README.md", "_iocptool.ps1"}
    if os.path.isfile(os.path.join(REPO, "man", "iocptool.1")):
        want.add("iocptool.html")
    check(names == want, f"{zip_name}: holds {sorted(names)}, wants {sorted(want)}")

    # ---- Scoop ----
    scoop_path = os.path.join(args.build, "packaging", "scoop", "iocptool.json")
    with open(scoop_path, encoding="utf-8") as f:
        scoop = json.load(f)
    validate(scoop, load_schema(schemas, "scoop-manifest.schema.json"), "scoop")
    check(scoop.get("version") == version, f"scoop: version {scoop.get('version')!r} is not {version!r}")
    arch = scoop.get("architecture", {}).get("64bit", {})
    check(arch.get("hash") == sha256, f"scoop: hash {arch.get('hash')} is not the ZIP's {sha256}")
    url = arch.get("url", "")
    check(url.endswith("/" + zip_name), f"scoop: url {url} does not end in /{zip_name}")
    check(scoop.get("bin") in names, f"scoop: bin {scoop.get('bin')!r} is not in the ZIP")

    # ---- winget ----
    wdir = os.path.join(args.build, "packaging", "winget", "manifests", "i", "iocptool", "iocptool", version)
    kinds = {
        "version": (f"{PACKAGE_ID}.yaml", "winget-manifest.version.1.12.0.schema.json"),
        "installer": (f"{PACKAGE_ID}.installer.yaml", "winget-manifest.installer.1.12.0.schema.json"),
        "defaultLocale": (f"{PACKAGE_ID}.locale.en-US.yaml",
                          "winget-manifest.defaultLocale.1.12.0.schema.json"),
    }
    present = sorted(os.listdir(wdir)) if os.path.isdir(wdir) else []
    check(present == sorted(f for f, _ in kinds.values()), f"winget: {wdir} holds {present}")
    docs = {}
    for kind, (fname, schema) in kinds.items():
        path = os.path.join(wdir, fname)
        if not check(os.path.isfile(path), f"winget: {path} is missing"):
            continue
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        docs[kind] = doc
        validate(doc, load_schema(schemas, schema), f"winget {kind}")
        check(doc.get("ManifestType") == kind, f"winget {kind}: ManifestType {doc.get('ManifestType')!r}")
        check(doc.get("ManifestVersion") == MANIFEST_VERSION,
              f"winget {kind}: ManifestVersion {doc.get('ManifestVersion')!r} is not {MANIFEST_VERSION!r}")
        check(doc.get("PackageIdentifier") == PACKAGE_ID,
              f"winget {kind}: PackageIdentifier {doc.get('PackageIdentifier')!r}")
        check(doc.get("PackageVersion") == version,
              f"winget {kind}: PackageVersion {doc.get('PackageVersion')!r} is not the string {version!r}")
    if "version" in docs and "defaultLocale" in docs:
        check(docs["version"].get("DefaultLocale") == docs["defaultLocale"].get("PackageLocale"),
              "winget: DefaultLocale and the locale manifest's PackageLocale differ")
    inst = docs.get("installer", {})
    check(inst.get("InstallerType") == "zip", f"winget installer: InstallerType {inst.get('InstallerType')!r}")
    check(inst.get("NestedInstallerType") == "portable",
          f"winget installer: NestedInstallerType {inst.get('NestedInstallerType')!r}")
    nested = inst.get("NestedInstallerFiles") or [{}]
    check(nested[0].get("RelativeFilePath") == "iocptool.exe" and "iocptool.exe" in names,
          f"winget installer: NestedInstallerFiles {nested} (ZIP: {sorted(names)})")
    check(nested[0].get("PortableCommandAlias") == "iocptool",
          f"winget installer: PortableCommandAlias {nested[0].get('PortableCommandAlias')!r}")
    for i, ins in enumerate(inst.get("Installers") or []):
        check(ins.get("InstallerSha256", "").lower() == sha256,
              f"winget installer {i}: InstallerSha256 {ins.get('InstallerSha256')} is not the ZIP's {sha256}")
        check(ins.get("InstallerUrl") == url, f"winget installer {i}: InstallerUrl differs from Scoop's url")
        check(ins.get("Architecture") == "x64", f"winget installer {i}: Architecture {ins.get('Architecture')!r}")

    # ---- the templates are templates ----
    for sub in ("scoop", "winget"):
        tdir = os.path.join(REPO, "packaging", sub)
        for fname in sorted(os.listdir(tdir)):
            with open(os.path.join(tdir, fname), encoding="utf-8") as f:
                text = f.read()
            check(fname.endswith(".in"), f"packaging/{sub}/{fname}: only templates (*.in) belong there")
            check("@IOCP_VERSION@" in text and f'"{version}"' not in text and not re.search(r"[0-9a-fA-F]{64}", text),
                  f"packaging/{sub}/{fname}: takes its version and hash from the build, not written in")

    # ---- the packaged program ----
    if args.run_exe:
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(tmp)
            cmd = args.run_exe.split() + [os.path.join(tmp, "iocptool.exe"), "--version"]
            try:
                env = {k: v for k, v in os.environ.items() if k != "IOCP_BACKEND"}
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
                out = r.stdout.replace("\r\n", "\n")
                print(out, end="")
                check(r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr}")
                check(out.startswith(f"iocptool {version}\n"), f"iocptool.exe --version: {out!r}")
                check("\nplatform: windows-x86_64\n" in out, f"iocptool.exe --version: no windows platform: {out!r}")
                check(re.search(r"\nbackends: iocp\b.*\(default: iocp\)\n", out) is not None,
                      f"iocptool.exe --version: no iocp backend: {out!r}")
            except subprocess.TimeoutExpired:
                check(False, f"{' '.join(cmd)}: no exit within 120 s")

    for e in errors:
        print(f"validate: {e}", file=sys.stderr)
    if errors:
        return 1
    print(f"validate: {zip_name} (sha256 {sha256}), Scoop and winget {MANIFEST_VERSION} manifests of "
          f"{version}: all valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
