#!/usr/bin/env bash
# Install the system parts Switchback's single-host runtime and its tests need, on Debian
# bookworm, as root.  Idempotent and quick when everything is already there: apt is only
# touched for packages that are missing.  See ENVIRONMENT.md for why each setting exists.
set -euo pipefail

# prometheus: the metric-gate tests start their own (tests/deployments/gates); never its service.
PACKAGES=(podman buildah runc haproxy wrk busybox-static git curl chromium chromium-driver docker-registry prometheus)
CONF=/etc/containers/containers.conf

if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-system-deps: installing ${missing[*]}"
  # Refresh the index only when it has never been fetched or a package is not known yet.
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] \
     || ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q
  fi
  # policy-rc.d 101 keeps apt from starting the distribution's haproxy service: we run
  # our own haproxy processes and the packaged one would hold port 80 for nothing.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# Stop any haproxy service that a previous install may have started.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now haproxy.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/haproxy ]; then
  /etc/init.d/haproxy stop >/dev/null 2>&1 || true
  update-rc.d haproxy disable >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
if [ -f /run/haproxy.pid ]; then
  kill "$(cat /run/haproxy.pid)" 2>/dev/null || true
  rm -f /run/haproxy.pid
fi

# containers.conf: runc instead of crun (crun fails on hybrid cgroups here) and ulimits
# that fit the host's RLIMIT_NOFILE.  Merge into an existing file, keeping other keys.
mkdir -p /etc/containers
python3 - "$CONF" <<'PY'
import re
import sys

path = sys.argv[1]
wanted = {
    "engine": {"runtime": '"runc"'},
    "containers": {"default_ulimits": '["nofile=1024:1024", "nproc=1024:1024"]'},
}
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""

lines = text.splitlines()
for section, keys in wanted.items():
    header = re.compile(r"^\s*\[\s*%s\s*\]\s*$" % re.escape(section))
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(f"[{section}]")
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines)
    )
    for key, value in keys.items():
        key_re = re.compile(r"^\s*#?\s*%s\s*=" % re.escape(key))
        found = [i for i in range(start + 1, end) if key_re.match(lines[i])]
        active = [i for i in found if not lines[i].lstrip().startswith("#")]
        new_line = f"{key} = {value}"
        if active:
            lines[active[0]] = new_line
        else:
            lines.insert(start + 1, new_line)
            end += 1

new_text = "\n".join(lines) + "\n"
if new_text != text:
    open(path, "w").write(new_text)
    print(f"install-system-deps: updated {path}")
PY

# User namespaces for app containers (SWITCHBACK_USERNS=auto): rootful Podman takes each
# container's uid/gid range from the "containers" entries of /etc/subuid and /etc/subgid,
# so root inside a container is an unprivileged uid on the host.  The range sits far above
# any real account (podman-run(1), "--userns=auto").
for idmap in /etc/subuid /etc/subgid; do
  if ! grep -q '^containers:' "$idmap" 2>/dev/null; then
    echo "containers:2147483647:2147483648" >>"$idmap"
    echo "install-system-deps: added the containers range to $idmap"
  fi
done

echo "install-system-deps: ok"
