#!/usr/bin/env bash
# Offline checks of everything under deploy/ (run by ctest; needs no network,
# no cluster, no Docker):
#
#   * every YAML file parses;
#   * Kubernetes objects: apiVersion/kind/metadata.name; every container
#     (sidecar init containers included) has resources, probes and a hardened
#     securityContext; images are pinned (no :latest, no missing tag); the
#     dbward container's config, certificates and probes fit together
#     (mounted files, admin port, Secret file modes vs. fsGroup, grace period
#     longer than drain_timeout); Service and PodDisruptionBudget selectors
#     match a workload;
#   * every dbward configuration (ConfigMap-embedded and deploy/examples/*.yaml)
#     passes `dbward check-config`, with a throwaway CA, certificates, keys (an
#     encrypted one where a key_password_file is named) and RSA keys generated
#     by openssl in a temporary directory under the same relative names;
#   * the systemd unit passes `systemd-analyze verify` (skipped when
#     systemd-analyze is missing) and has the required hardening;
#   * the Dockerfile has a build and a runtime stage, a non-root USER and the
#     expected entrypoint; the two .dockerignore files are identical;
#   * `kubectl apply --dry-run=client` when kubectl and an API server are
#     reachable (client dry-run still needs the server's API discovery).
#
# Usage: DBWARD_BINARY=build/dbward tests/deploy_check.sh
# Requires python3 with PyYAML (Debian: python3-yaml) and openssl.
#
# While the admin listener is being added, a dbward that rejects only the new
# top-level `admin:` key fails this check with a message saying so (the rest
# of each configuration is still checked with `admin:` removed). Set
# DEPLOY_CHECK_ALLOW_MISSING_ADMIN=1 to report that as a warning instead.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
export DEPLOY_CHECK_ROOT="$root"
export DBWARD_BINARY="${DBWARD_BINARY:-$root/build/dbward}"

die() { echo "deploy_check: error: $*" >&2; exit 1; }

command -v python3 > /dev/null || die "python3 is not installed (Debian package: python3)"
python3 -c 'import yaml' 2> /dev/null ||
  die "PyYAML is not available to python3 ($(command -v python3)); install the Debian package python3-yaml (scripts/install-deps.sh should list it)"
command -v openssl > /dev/null || die "openssl is not installed (Debian package: openssl)"
[[ -x $DBWARD_BINARY ]] || die "dbward binary '$DBWARD_BINARY' not found or not executable; build it (bash scripts/build.sh) or set DBWARD_BINARY"
[[ -d $root/deploy ]] || die "$root/deploy does not exist"

if [[ -n ${DEPLOY_CHECK_KEEP:-} ]]; then
  # tests/container_test.sh keeps the generated configurations (and their
  # throwaway certificates) to check them again inside the built image; it
  # reads DEPLOY_CHECK_KEEP/configs.txt, one "label<TAB>path" per line.
  rm -rf "$DEPLOY_CHECK_KEEP" && mkdir -p "$DEPLOY_CHECK_KEEP"
  tmp=$(cd "$DEPLOY_CHECK_KEEP" && pwd)
else
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/dbward-deploy-check.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
fi
export DEPLOY_CHECK_TMP="$tmp"

python3 - <<'PYTHON'
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.environ["DEPLOY_CHECK_ROOT"]
DEPLOY = os.path.join(ROOT, "deploy")
TMP = os.environ["DEPLOY_CHECK_TMP"]
DBWARD = os.environ["DBWARD_BINARY"]
ALLOW_MISSING_ADMIN = os.environ.get("DEPLOY_CHECK_ALLOW_MISSING_ADMIN") == "1"

passed = failed = skipped = 0
admin_rejected = []  # configs that dbward rejected only because of `admin:`


def rel(path):
    return os.path.relpath(path, ROOT)


def ok(msg):
    global passed
    passed += 1
    print(f"ok:   {msg}")


def fail(msg):
    global failed
    failed += 1
    print(f"FAIL: {msg}")


def skip(msg):
    global skipped
    skipped += 1
    print(f"skip: {msg}")


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def run(cmd, **kw):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def duration_seconds(text):
    """dbward's duration syntax: 500ms, 10s, 5m, 1h or a bare number of seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    if not m:
        return None
    v = int(m.group(1))
    return {"ms": v / 1000, "s": v, None: v, "m": v * 60, "h": v * 3600}[m.group(2)]


def host_port(text):
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", str(text))
    if not m:
        return None
    return (m.group(1) or m.group(3), int(m.group(2) or m.group(4)))


# ---------------------------------------------------------------- YAML parses
yaml_files = sorted(
    p for p in glob.glob(os.path.join(DEPLOY, "**", "*"), recursive=True)
    if p.endswith((".yaml", ".yml")) and os.path.isfile(p)
)
# glob skips dot-files by default; include them too.
yaml_files += sorted(
    p for p in glob.glob(os.path.join(DEPLOY, "**", ".*"), recursive=True)
    if p.endswith((".yaml", ".yml")) and os.path.isfile(p)
)
if not yaml_files:
    fail("no YAML files under deploy/")
docs_by_file = {}
for path in yaml_files:
    try:
        with open(path) as f:
            docs_by_file[path] = [d for d in yaml.safe_load_all(f) if d is not None]
        ok(f"{rel(path)} parses ({len(docs_by_file[path])} document(s))")
    except yaml.YAMLError as e:
        fail(f"{rel(path)} is not valid YAML: {e}")


# ------------------------------------------------ dbward configurations (data)
TLS_FILE_KEYS = ("ca_file", "cert_file", "key_file", "key_password_file")


def referenced_files(cfg):
    """[(kind, path, extra)] for every file a dbward config makes dbward read."""
    out = []
    for l in cfg.get("listeners") or []:
        if not isinstance(l, dict):
            continue
        for section in ("backend_tls", "client_tls"):
            t = l.get(section)
            if not isinstance(t, dict):
                continue
            if t.get("ca_file"):
                out.append(("ca", str(t["ca_file"]), None))
            if t.get("cert_file") and t.get("key_file"):
                out.append(("pair", str(t["cert_file"]), (str(t["key_file"]), t.get("key_password_file"))))
        if l.get("rsa_key_file"):
            out.append(("rsa", str(l["rsa_key_file"]), None))
    return out


def all_paths(cfg):
    paths = []
    for kind, p, extra in referenced_files(cfg):
        paths.append(p)
        if kind == "pair":
            paths.append(extra[0])
            if extra[1]:
                paths.append(str(extra[1]))
    return paths


class Pki:
    """A throwaway CA, created once, that signs every generated certificate."""

    def __init__(self, d):
        os.makedirs(d, exist_ok=True)
        self.key = os.path.join(d, "ca.key")
        self.pem = os.path.join(d, "ca.pem")
        self.serial = os.path.join(d, "ca.srl")
        self.openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", self.key, "-out", self.pem, "-days", "30",
                      "-subj", "/CN=dbward deploy-check CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    @staticmethod
    def openssl(args):
        r = run(["openssl"] + args)
        if r.returncode != 0:
            raise RuntimeError("openssl " + " ".join(args) + " failed:\n" + r.stdout)

    def ca(self, dest):
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(self.pem, dest)

    def key_file(self, dest, password_file=None):
        if os.path.exists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        args = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", dest]
        if password_file:
            self.password(password_file)
            args += ["-aes-256-cbc", "-pass", "file:" + password_file]
        self.openssl(args)

    def password(self, dest):
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w") as f:
                f.write("deploy-check-password\n")

    def cert(self, dest, key, password_file=None):
        if os.path.exists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        csr, ext = dest + ".csr", dest + ".ext"
        args = ["req", "-new", "-key", key, "-out", csr, "-subj", "/CN=localhost"]
        if password_file:
            args += ["-passin", "file:" + password_file]
        self.openssl(args)
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    "basicConstraints=critical,CA:FALSE\n")
        self.openssl(["x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key,
                      "-CAserial", self.serial, "-CAcreateserial", "-days", "30", "-sha256",
                      "-extfile", ext, "-out", dest])
        os.remove(csr)
        os.remove(ext)

    def rsa(self, dest):
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            self.openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", dest])


pki = Pki(os.path.join(TMP, "pki"))
config_counter = 0


def strip_admin(text):
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if re.match(r"admin\s*:", line):
            skipping = True
            continue
        if skipping and (line.strip() == "" or line[0] in " \t"):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def check_dbward_config(label, text, filename="dbward.yaml"):
    """Writes the config into its own temp dir with generated TLS material at
    the paths it names, and runs `dbward check-config` on it."""
    global config_counter
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        fail(f"{label}: not valid YAML: {e}")
        return None
    if not isinstance(cfg, dict) or "listeners" not in cfg:
        fail(f"{label}: not a dbward configuration (no 'listeners')")
        return None
    config_counter += 1
    d = os.path.join(TMP, f"config{config_counter}")
    os.makedirs(d)

    # Absolute certificate paths are moved under the temp dir (text
    # substitution keeps line numbers intact for dbward's messages).
    def where(p):
        return p if not os.path.isabs(p) else os.path.join(d, "abs", p.lstrip("/"))

    for p in sorted(set(all_paths(cfg)), key=len, reverse=True):
        if os.path.isabs(p):
            text = text.replace(p, where(p))

    def full(p):
        p = where(p)
        return p if os.path.isabs(p) else os.path.join(d, p)

    try:
        for kind, p, extra in referenced_files(cfg):
            if kind == "ca":
                pki.ca(full(p))
            elif kind == "rsa":
                pki.rsa(full(p))
            else:
                key, pw = extra
                pw_full = full(str(pw)) if pw else None
                pki.key_file(full(key), pw_full)
                pki.cert(full(p), full(key), pw_full)
    except RuntimeError as e:
        fail(f"{label}: could not generate test certificates: {e}")
        return cfg

    # The admin listener: the shape the manifests rely on.
    admin = cfg.get("admin")
    if check(isinstance(admin, dict) and host_port(admin.get("listen")) is not None,
             f"{label}: admin.listen is HOST:PORT"):
        pass

    path = os.path.join(d, filename)
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(TMP, "configs.txt"), "a") as f:
        f.write(f"{label}\t{path}\n")
    r = run([DBWARD, "check-config", path])
    if r.returncode == 0:
        ok(f"{label}: dbward check-config accepts it")
        return cfg
    if "unknown key 'admin'" in r.stdout:
        with open(path, "w") as f:
            f.write(strip_admin(text))
        r2 = run([DBWARD, "check-config", path])
        if r2.returncode == 0:
            admin_rejected.append(label)
            print(f"note: {label}: dbward check-config rejects only the new top-level 'admin' key "
                  f"(the rest passes with it removed):\n      {r.stdout.strip()}")
            return cfg
        fail(f"{label}: dbward check-config rejects it (also with 'admin' removed):\n{r2.stdout.rstrip()}")
        return cfg
    fail(f"{label}: dbward check-config rejects it:\n{r.stdout.rstrip()}")
    return cfg


# ------------------------------------------------------- Kubernetes manifests
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
DEFAULT_DBWARD_CONFIG = "/etc/dbward/dbward.yaml"


def pod_spec(obj):
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return spec, obj.get("metadata", {}).get("labels") or {}
    if obj["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    tmpl = spec.get("template") or {}
    return tmpl.get("spec") or {}, (tmpl.get("metadata") or {}).get("labels") or {}


def image_pinned(image):
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


def effective(container, pod, key):
    c = (container.get("securityContext") or {}).get(key)
    return c if c is not None else (pod.get("securityContext") or {}).get(key)


def volume_files(volume, objects):
    """{relative path inside the volume: (kind, object name, key)}; None if unknown."""
    files = {}

    def add(kind, src):
        name = src.get("name")
        items = src.get("items")
        if items:
            for it in items:
                files[it["path"]] = (kind, name, it["key"])
            return True
        obj = objects.get((kind, name))
        if obj is None:
            return False
        for k in list((obj.get("data") or {}).keys()) + list((obj.get("stringData") or {}).keys()):
            files[k] = (kind, name, k)
        return True

    known = True
    if "configMap" in volume:
        known &= add("ConfigMap", volume["configMap"])
    elif "secret" in volume:
        known &= add("Secret", dict(volume["secret"], name=volume["secret"].get("secretName")))
    elif "projected" in volume:
        for s in volume["projected"].get("sources") or []:
            if "configMap" in s:
                known &= add("ConfigMap", s["configMap"])
            elif "secret" in s:
                known &= add("Secret", s["secret"])
    else:
        return None
    return files if known else None


def volume_mode(volume):
    for kind in ("configMap", "secret", "projected"):
        if kind in volume:
            return volume[kind].get("defaultMode", 0o644)
    return None


def has_secret(volume):
    return "secret" in volume or any("secret" in s for s in (volume.get("projected") or {}).get("sources") or [])


def resolve_mount(path, mounts, volumes, objects):
    """(volume, file map, path inside the volume) for an absolute container path."""
    best = None
    for m in mounts:
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"].rstrip("/"))):
            best = m
    if best is None:
        return None, None, None
    vol = volumes.get(best["name"])
    if vol is None:
        return None, None, None
    inner = os.path.relpath(path, best["mountPath"])
    return vol, volume_files(vol, objects), inner


def probe_port(probe, container):
    port = ((probe or {}).get("httpGet") or {}).get("port")
    if isinstance(port, str) and not port.isdigit():
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return p.get("containerPort")
        return None
    return int(port) if port is not None else None


def check_dbward_container(where, c, pod, objects):
    args = c.get("args") or []
    config_path = DEFAULT_DBWARD_CONFIG
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            config_path = args[i + 1]
        elif a.startswith("--config="):
            config_path = a.split("=", 1)[1]
    mounts = c.get("volumeMounts") or []
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    vol, files, inner = resolve_mount(config_path, mounts, volumes, objects)
    if not check(files is not None and inner in files and files[inner][0] == "ConfigMap",
                 f"{where}: {config_path} comes from a ConfigMap in the manifests"):
        return
    kind, name, key = files[inner]
    cm = objects.get(("ConfigMap", name))
    if not check(cm is not None and key in (cm.get("data") or {}),
                 f"{where}: ConfigMap {name} has key {key}"):
        return
    cfg = yaml.safe_load(cm["data"][key])
    if not isinstance(cfg, dict):
        return

    # Every file the config names is mounted where dbward will look for it.
    base = os.path.dirname(config_path)
    missing = []
    for p in all_paths(cfg):
        target = p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
        _, tfiles, tinner = resolve_mount(target, mounts, volumes, objects)
        if tfiles is None or tinner not in tfiles:
            missing.append(target)
    check(not missing, f"{where}: every certificate/key the config names is mounted"
          + (f" (missing: {', '.join(missing)})" if missing else ""))

    # Secret files: 0400 as asked, and readable by the non-root user.
    for m in mounts:
        v = volumes.get(m["name"])
        if v is None or not has_secret(v):
            continue
        mode = volume_mode(v)
        check(mode == 0o400, f"{where}: Secret volume {m['name']} has defaultMode 0400 (got {oct(mode)})")
        uid = effective(c, pod, "runAsUser")
        fs_group = (pod.get("securityContext") or {}).get("fsGroup")
        if uid not in (None, 0) and mode is not None and not mode & 0o044:
            check(fs_group is not None,
                  f"{where}: mode {oct(mode)} Secret files are readable by uid {uid} (pod fsGroup set)")

    # Probes hit the admin listener, which must listen on the Pod IP.
    admin = cfg.get("admin") or {}
    hp = host_port(admin.get("listen")) if isinstance(admin, dict) else None
    for probe, path in (("startupProbe", "/startup"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        pr = c.get(probe) or {}
        check(((pr.get("httpGet") or {}).get("path")) == path, f"{where}: {probe} is GET {path}")
        check(hp is not None and probe_port(pr, c) == hp[1],
              f"{where}: {probe} port is the admin port ({hp[1] if hp else 'admin.listen missing'})")
    if hp is not None:
        check(hp[0] in ("0.0.0.0", "::", "*"),
              f"{where}: admin listens on all addresses (the kubelet probes the Pod IP), got {hp[0]}")

    # The image and the manifest agree: the user the Dockerfile sets, the
    # admin port it exposes, and a root file system dbward never writes to.
    image_users, image_ports = IMAGE_USERS, IMAGE_PORTS
    uid = effective(c, pod, "runAsUser")
    check(image_users and str(uid) == image_users[-1].split(":")[0],
          f"{where}: runAsUser {uid} is the image's USER ({image_users[-1] if image_users else 'none'})")
    ports = [p.get("containerPort") for p in c.get("ports") or []]
    check(hp is not None and hp[1] in ports and str(hp[1]) in image_ports,
          f"{where}: the admin port {hp[1] if hp else '?'} is a containerPort {ports} and EXPOSEd by the image {image_ports}")
    audit = str((cfg.get("log") or {}).get("audit", "stdout"))
    if audit not in ("stdout", "stderr", "off"):
        check(resolve_mount(audit, mounts, volumes, objects)[0] is not None,
              f"{where}: the audit file {audit} is on a mounted volume (the root file system is read-only)")

    drain = duration_seconds(cfg.get("drain_timeout", "30s"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(drain is not None and grace > drain,
          f"{where}: terminationGracePeriodSeconds ({grace}) > drain_timeout ({cfg.get('drain_timeout', '30s')})")


def check_container(where, c, pod, is_init):
    sidecar = is_init and c.get("restartPolicy") == "Always"
    image = str(c.get("image", ""))
    check(image_pinned(image), f"{where}: image '{image}' has a tag or digest and is not :latest")
    res = c.get("resources") or {}
    check(all((res.get(k) or {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")),
          f"{where}: resources.requests and resources.limits set cpu and memory")
    if not is_init or sidecar:
        check("readinessProbe" in c and "livenessProbe" in c, f"{where}: has readinessProbe and livenessProbe")
    sc = c.get("securityContext") or {}
    check(effective(c, pod, "runAsNonRoot") is True, f"{where}: runAsNonRoot: true")
    uid = effective(c, pod, "runAsUser")
    check(uid is None or uid != 0, f"{where}: runAsUser is not 0")
    check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem: true")
    check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation: false")
    check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{where}: capabilities drop ALL")
    sp = effective(c, pod, "seccompProfile") or {}
    check(sp.get("type") in ("RuntimeDefault", "Localhost"), f"{where}: seccompProfile RuntimeDefault")


# What the image says about itself, for the manifests to agree with (read once).
with open(os.path.join(DEPLOY, "Dockerfile")) as f:
    _dockerfile_text = f.read()
IMAGE_USERS = re.findall(r"^USER\s+(\S+)", _dockerfile_text, re.M)
IMAGE_PORTS = [p.split("/")[0] for l in re.findall(r"^EXPOSE\s+(.+)$", _dockerfile_text, re.M) for p in l.split()]

k8s_files = [p for p in docs_by_file if os.sep + "kubernetes" + os.sep in p]
for path in k8s_files:
    docs = docs_by_file[path]
    objects = {}
    for i, d in enumerate(docs):
        label = f"{rel(path)}[{i}]"
        name = ((d.get("metadata") or {}).get("name")) if isinstance(d, dict) else None
        if not check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and name,
                     f"{label}: has apiVersion, kind and metadata.name"):
            continue
        objects[(d["kind"], name)] = d
    for (kind, name), obj in objects.items():
        where = f"{rel(path)} {kind}/{name}"
        if kind == "ConfigMap":
            for key, text in (obj.get("data") or {}).items():
                if key.endswith((".yaml", ".yml")):
                    try:
                        parsed = yaml.safe_load(text)
                    except yaml.YAMLError as e:
                        fail(f"{where} key {key}: not valid YAML: {e}")
                        continue
                    if isinstance(parsed, dict) and "listeners" in parsed:
                        check_dbward_config(f"{where} key {key}", text, key)
        if kind in WORKLOADS:
            pod, labels = pod_spec(obj)
            containers = pod.get("containers") or []
            check(bool(containers), f"{where}: has containers")
            found_dbward = False
            for is_init, group in ((True, pod.get("initContainers") or []), (False, containers)):
                for c in group:
                    cw = f"{where} container {c.get('name')}"
                    check_container(cw, c, pod, is_init)
                    if "dbward" in str(c.get("image", "")).rsplit("/", 1)[-1]:
                        found_dbward = True
                        check_dbward_container(cw, c, pod, objects)
            check(found_dbward, f"{where}: runs a dbward container")
            check((pod.get("securityContext") or {}).get("runAsNonRoot") is True,
                  f"{where}: pod securityContext runAsNonRoot: true")
        if kind in ("Service", "PodDisruptionBudget"):
            sel = (obj.get("spec") or {}).get("selector") or {}
            if kind == "PodDisruptionBudget":
                sel = sel.get("matchLabels") or {}
            matches = [o for o in objects.values() if o["kind"] in WORKLOADS
                       and sel and all(pod_spec(o)[1].get(k) == v for k, v in sel.items())]
            check(bool(matches), f"{where}: selector {sel} matches a workload's Pod labels")
            if kind == "Service" and matches:
                pod, _ = pod_spec(matches[0])
                names = {p.get("name") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                nums = {p.get("containerPort") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                for p in obj["spec"].get("ports") or []:
                    t = p.get("targetPort", p.get("port"))
                    check(t in names or t in nums, f"{where}: targetPort {t} is a container port")
        if kind == "Deployment" and "standalone" in os.path.basename(path):
            check((obj.get("spec") or {}).get("replicas", 1) >= 2, f"{where}: at least 2 replicas")
    if "standalone" in os.path.basename(path):
        kinds = {k for k, _ in objects}
        check({"Deployment", "Service", "PodDisruptionBudget"} <= kinds,
              f"{rel(path)}: has a Deployment, a Service and a PodDisruptionBudget")

# ------------------------------------------------------------ example configs
example_drains = []
example_low_ports = []
examples = sorted(glob.glob(os.path.join(DEPLOY, "examples", "*.yaml")) +
                  glob.glob(os.path.join(DEPLOY, "examples", "*.yml")))
check(bool(examples), "deploy/examples has example configurations")
protocols = set()
for path in examples:
    with open(path) as f:
        text = f.read()
    cfg = check_dbward_config(rel(path), text, os.path.basename(path))
    if isinstance(cfg, dict):
        example_drains.append(duration_seconds(cfg.get("drain_timeout", "30s")) or 0)
        for l in cfg.get("listeners") or []:
            protocols.add(l.get("protocol"))
            hp = host_port(l.get("listen"))
            if hp and 0 < hp[1] < 1024:
                example_low_ports.append(f"{rel(path)} {l.get('name')}")
check({"postgres", "mysql", "tds", "tcp"} <= protocols,
      f"deploy/examples cover postgres, mysql, tds and tcp listeners (have {sorted(p for p in protocols if p)})")

# ------------------------------------------------------------------- systemd
for unit in sorted(glob.glob(os.path.join(DEPLOY, "systemd", "*.service"))):
    with open(unit) as f:
        text = f.read()
    settings = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z]+)=(.*)$", line)
        if m:
            settings.setdefault(m.group(1), []).append(m.group(2).strip())

    def last(k):
        return (settings.get(k) or [None])[-1]

    u = rel(unit)
    check(bool(last("DynamicUser") == "yes" or (last("User") and last("User") != "root")),
          f"{u}: runs as DynamicUser or a dedicated non-root User")
    for k, v in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                 ("KillSignal", "SIGTERM"), ("Restart", "on-failure")):
        check(last(k) == v, f"{u}: {k}={v}")
    check(last("ProtectHome") in ("yes", "read-only", "tmpfs"), f"{u}: ProtectHome set")
    check("/etc/dbward" in (last("ReadOnlyPaths") or "").split(), f"{u}: ReadOnlyPaths=/etc/dbward")
    check(bool(last("LogsDirectory")), f"{u}: LogsDirectory set (audit file)")
    check(any("check-config" in v for v in settings.get("ExecStartPre") or []),
          f"{u}: ExecStartPre runs dbward check-config")
    caps = (last("CapabilityBoundingSet") or "").split()
    check(caps in ([], ["CAP_NET_BIND_SERVICE"]), f"{u}: CapabilityBoundingSet empty or CAP_NET_BIND_SERVICE only")
    if caps:
        check(last("AmbientCapabilities") == "CAP_NET_BIND_SERVICE",
              f"{u}: AmbientCapabilities=CAP_NET_BIND_SERVICE with the bounding set")
    check(not example_low_ports or caps == ["CAP_NET_BIND_SERVICE"],
          f"{u}: example listeners below port 1024 have CAP_NET_BIND_SERVICE"
          + (f" ({', '.join(example_low_ports)})" if example_low_ports else ""))
    stop = duration_seconds((last("TimeoutStopSec") or "").replace("min", "m"))
    longest = max(example_drains or [30])
    check(stop is not None and stop > longest,
          f"{u}: TimeoutStopSec ({last('TimeoutStopSec')}) > the longest example drain_timeout ({longest}s)")
    if shutil.which("systemd-analyze"):
        # verify checks that ExecStart binaries exist: point it at the one under test.
        d = os.path.join(TMP, "systemd")
        os.makedirs(d, exist_ok=True)
        copy = os.path.join(d, os.path.basename(unit))
        with open(copy, "w") as f:
            f.write(text.replace("/usr/local/bin/dbward", os.path.abspath(DBWARD)))
        r = run(["systemd-analyze", "verify", copy], cwd=d)
        noise = [l for l in r.stdout.splitlines() if os.path.basename(unit) in l or "dbward" in l]
        check(r.returncode == 0 and not noise,
              f"{u}: systemd-analyze verify" + ("" if r.returncode == 0 and not noise else ":\n" + r.stdout.rstrip()))
    else:
        skip(f"{u}: systemd-analyze not installed; unit not verified")

# ---------------------------------------------------------------- Dockerfile
dockerfile = os.path.join(DEPLOY, "Dockerfile")
if check(os.path.isfile(dockerfile), "deploy/Dockerfile exists"):
    with open(dockerfile) as f:
        raw = f.read()
    logical, buf = [], ""
    for line in raw.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        logical.append((buf + line).strip())
        buf = ""
    stages = []
    for ins in logical:
        word = ins.split(None, 1)[0].upper()
        if word == "FROM":
            parts = ins.split()
            args = [p for p in parts[1:] if not p.startswith("--")]
            stages.append({"image": args[0], "name": args[2] if len(args) >= 3 and args[1].upper() == "AS" else None,
                           "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, ins))
    if check(len(stages) >= 2, f"deploy/Dockerfile has a build and a runtime stage ({len(stages)} FROM)"):
        build, final = stages[0], stages[-1]
        for s in stages:
            check(s["image"] in ("debian:12-slim", "debian:bookworm-slim") or s["image"].startswith("debian:12-slim@"),
                  f"deploy/Dockerfile: stage FROM {s['image']} is debian:12-slim")
        check(bool(build["name"]), "deploy/Dockerfile: the build stage is named (FROM ... AS name)")

        def text_of(stage, word):
            return [i for w, i in stage["ins"] if w == word]

        def installed(stage):
            pk = []
            for r in text_of(stage, "RUN"):
                for m in re.finditer(r"apt-get install ([^&;|]*)", r):
                    pk += [w for w in m.group(1).split() if not w.startswith("-")]
            return pk

        bpk, rpk = installed(build), installed(final)
        need_build = {"build-essential", "cmake", "ninja-build", "pkg-config", "android-libboringssl-dev",
                      "libuv1-dev", "libyaml-cpp-dev", "libfmt-dev", "libcli11-dev"}
        need_run = {"android-libboringssl", "libuv1", "libyaml-cpp0.7", "libfmt9", "ca-certificates"}
        check(need_build <= set(bpk), f"deploy/Dockerfile: build stage installs {sorted(need_build)}")
        check(set(rpk) == need_run, f"deploy/Dockerfile: runtime stage installs exactly {sorted(need_run)} (has {rpk})")
        runs = " ".join(text_of(build, "RUN"))
        check("-DDBWARD_BUILD_TESTS=OFF" in runs and "-DDBWARD_BUILD_BENCH=OFF" in runs,
              "deploy/Dockerfile: cmake with -DDBWARD_BUILD_TESTS=OFF -DDBWARD_BUILD_BENCH=OFF")
        check(any(f"--from={build['name']}" in i for i in text_of(final, "COPY")),
              "deploy/Dockerfile: the runtime stage copies the binary from the build stage")
        users = [i.split(None, 1)[1].strip() for i in text_of(final, "USER")]
        user = users[-1].split(":")[0] if users else None
        check(user is not None and user not in ("0", "root"), f"deploy/Dockerfile: final USER is non-root ({user})")
        check(user == "65532", "deploy/Dockerfile: USER 65532")
        ep = text_of(final, "ENTRYPOINT")
        check(ep and ep[-1].split(None, 1)[1].strip() == '["/usr/local/bin/dbward"]',
              'deploy/Dockerfile: ENTRYPOINT ["/usr/local/bin/dbward"]')
        cmd = text_of(final, "CMD")
        check(cmd and re.sub(r"\s", "", cmd[-1].split(None, 1)[1]) == '["run","--config","/etc/dbward/dbward.yaml"]',
              'deploy/Dockerfile: CMD ["run","--config","/etc/dbward/dbward.yaml"]')
        exposed = " ".join(i.split(None, 1)[1] for i in text_of(final, "EXPOSE"))
        check("9090" in exposed.split() or "9090/tcp" in exposed.split(), "deploy/Dockerfile: EXPOSE 9090 (admin)")
        # One apt-cache call for all (each call costs most of a second); it
        # succeeds if any package is found, so compare the names it prints.
        # dpkg is asked too, to tell "no package lists" from "unknown package".
        shown = set()
        if shutil.which("apt-cache"):
            r = run(["apt-cache", "show", "--no-all-versions", "dpkg"] + bpk + rpk)
            shown = set(re.findall(r"^Package: (\S+)", r.stdout, re.M))
        if "dpkg" in shown:
            unknown = [p for p in bpk + rpk if p not in shown]
            check(not unknown, "deploy/Dockerfile: every apt package exists (apt-cache show)"
                  + (f"; unknown: {unknown}" if unknown else ""))
        else:
            skip("deploy/Dockerfile: apt-cache has no package lists (run apt-get update); package names not looked up")
    ignores = [os.path.join(DEPLOY, ".dockerignore"), os.path.join(DEPLOY, "Dockerfile.dockerignore")]
    present = [p for p in ignores if os.path.isfile(p)]
    if check(bool(present), "deploy has a .dockerignore"):
        contents = {}
        for p in present:
            with open(p) as f:
                contents[p] = f.read()
            pats = [l.strip() for l in contents[p].splitlines() if l.strip() and not l.startswith("#")]
            check(any(x.startswith("build") for x in pats) and any("node_modules" in x for x in pats),
                  f"{rel(p)} excludes build directories and node_modules")
        check(len(set(contents.values())) == 1, "deploy/.dockerignore and deploy/Dockerfile.dockerignore are identical")

# -------------------------------------------------------------------- kubectl
kubectl = shutil.which("kubectl")
if not kubectl:
    skip("kubectl not installed; no `kubectl apply --dry-run=client`")
elif run([kubectl, "version", "--request-timeout=5s"]).returncode != 0:
    skip("kubectl is installed but no API server is reachable (client dry-run needs its discovery); "
         "no `kubectl apply --dry-run=client`")
else:
    for path in k8s_files:
        r = run([kubectl, "apply", "--dry-run=client", "-f", path])
        check(r.returncode == 0, f"kubectl apply --dry-run=client -f {rel(path)}" + ("" if r.returncode == 0 else ":\n" + r.stdout))

# -------------------------------------------------------------------- summary
if admin_rejected:
    msg = (f"{DBWARD} does not accept the top-level 'admin' key yet (the admin listener is being added); "
           f"{len(admin_rejected)} configuration(s) pass check-config only with it removed: "
           + ", ".join(admin_rejected))
    if ALLOW_MISSING_ADMIN:
        print(f"warning: {msg}")
    else:
        fail(msg + " (set DEPLOY_CHECK_ALLOW_MISSING_ADMIN=1 to accept this while the admin listener lands)")

print(f"deploy_check: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PYTHON
