#!/usr/bin/env bash
# Installs everything baocao needs on a fresh machine, into git-ignored folders of the repo:
#   .venv/               virtualenv of Python $PYTHON_MINOR (below) with the pinned dependencies
#   .cache/kafka/lib     Apache Kafka jars from Maven Central (deploy/kafka/pom.xml)
#   .cache/mongo-java-server/lib   mongo-java-server (H2 backend) from Maven Central, with its
#                        small launcher compiled from deploy/mongo-java-server
#   .cache/bin/promtool  from Debian's prometheus package, when apt is available
#   .cache/bin/helm, .cache/bin/kubeconform   built with go install (Go module proxy), for the
#                        Helm chart's checks
#   chromium, chromedriver  Debian's packages, for the web front end's browser tests (tests/e2e/test_web_*.py)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# The Python minor version baocao runs on; the Dockerfile's base image has the same one.
PYTHON_MINOR=3.12
minor_of() {  # the major.minor of a python executable, or nothing when it does not run
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}
find_python() {  # python$PYTHON_MINOR on the PATH, else pyenv's newest patch release of it
  local candidates=("python$PYTHON_MINOR")
  local versions="${PYENV_ROOT:-$HOME/.pyenv}/versions"
  if [ -d "$versions" ]; then
    while IFS= read -r dir; do candidates+=("$dir/bin/python$PYTHON_MINOR"); done \
      < <(find "$versions" -maxdepth 1 -name "$PYTHON_MINOR.*" | sort -V -r)
  fi
  # a pyenv shim answers on the PATH even when the active version lacks it: each one is run
  for candidate in "${candidates[@]}"; do
    if [ "$(minor_of "$candidate")" = "$PYTHON_MINOR" ]; then command -v "$candidate"; return 0; fi
  done
  return 1
}
if [ -n "${PYTHON:-}" ]; then
  PYTHON_MINOR="$(minor_of "$PYTHON")"
  [ -n "$PYTHON_MINOR" ] || { echo "install: PYTHON=$PYTHON does not run" >&2; exit 1; }
else
  PYTHON="$(find_python)" || { echo "install: Python $PYTHON_MINOR is required (python$PYTHON_MINOR, or pyenv install $PYTHON_MINOR)" >&2; exit 1; }
fi

# A virtualenv of another minor version (pyvenv.cfg's version) is made again from scratch.
venv_minor=""
if [ -f .venv/pyvenv.cfg ]; then
  venv_minor="$(sed -n 's/^version\(_info\)\{0,1\} *= *\([0-9]*\.[0-9]*\).*/\2/p' .venv/pyvenv.cfg | head -n 1)"
fi
if [ -d .venv ] && [ "$venv_minor" != "$PYTHON_MINOR" ]; then
  echo "install: .venv is Python ${venv_minor:-unknown}, not $PYTHON_MINOR: made again"
  rm -rf .venv
fi

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ] || [ constraints.txt -nt .venv/.installed ]; then
  echo "install: python $PYTHON_MINOR dependencies -> .venv ($PYTHON)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
  touch .venv/.installed
fi

if [ ! -f .cache/kafka/.installed ] || [ deploy/kafka/pom.xml -nt .cache/kafka/.installed ]; then
  echo "install: Apache Kafka from Maven Central -> .cache/kafka/lib"
  command -v mvn >/dev/null || { echo "install: Maven (mvn) and Java 17 are required" >&2; exit 1; }
  rm -rf .cache/kafka/lib
  mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$root/.cache/kafka/lib" -DincludeScope=runtime
  touch .cache/kafka/.installed
fi

mjs=deploy/mongo-java-server
if [ ! -f .cache/mongo-java-server/.installed ] || [ "$mjs/pom.xml" -nt .cache/mongo-java-server/.installed ] \
   || [ -n "$(find "$mjs/src" -newer .cache/mongo-java-server/.installed -print -quit)" ]; then
  echo "install: mongo-java-server from Maven Central -> .cache/mongo-java-server/lib"
  rm -rf .cache/mongo-java-server/lib
  mvn -q -B -f "$mjs/pom.xml" package dependency:copy-dependencies \
    -DoutputDirectory="$root/.cache/mongo-java-server/lib" -DincludeScope=runtime
  cp "$mjs"/target/mongo-java-server-runner-*.jar .cache/mongo-java-server/lib/
  touch .cache/mongo-java-server/.installed
fi

if [ ! -x .cache/bin/promtool ] && [ ! -x .cache/bin/prometheus ]; then
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      echo "install: prometheus (Debian package, for promtool and the local Prometheus server)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
        || echo "install: could not install prometheus; promtool checks and the local Prometheus are skipped" >&2
    fi
  fi
  mkdir -p .cache/bin
  for tool in promtool prometheus; do
    if command -v "$tool" >/dev/null; then ln -sf "$(command -v "$tool")" ".cache/bin/$tool"; fi
  done
fi

# helm and kubeconform, for the chart's checks (tests/unit/test_deployment.py): built from their
# Go modules through the Go module proxy into .cache/bin (no prebuilt download). The marker file
# names the version, so changing a version here rebuilds it. Without Go the chart's tests fail and
# name this step; the rest of the suite still runs.
go_tool() {  # name module@version variable-that-holds-the-version
  local name="$1" module="$2" var="$3" version="${2##*@}"
  [ -x ".cache/bin/$name" ] && [ -f ".cache/bin/.$name-$version" ] && return 0
  if ! command -v go >/dev/null; then
    echo "install: Go is missing, so $name is not built (go install $module); the chart's tests will fail" >&2
    return 0
  fi
  echo "install: $name $version (go install $module) -> .cache/bin"
  mkdir -p .cache/bin
  if GOBIN="$root/.cache/bin" go install -ldflags="-X $var=$version" "$module"; then
    rm -f .cache/bin/."$name"-*
    touch ".cache/bin/.$name-$version"
  else
    echo "install: could not build $name; the chart's tests will fail" >&2
  fi
}
go_tool helm helm.sh/helm/v4/cmd/helm@v4.3.2 helm.sh/helm/v4/internal/version.version
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0 main.version

# The browser tests drive Debian's chromium through its chromedriver (no browser download). When
# they cannot be installed the tests fail and say so: they are never skipped.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "install: chromium and chromium-driver (Debian packages, for the browser tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null) \
      || echo "install: could not install chromium; the browser tests will fail" >&2
  else
    echo "install: chromium and chromedriver are missing (apt-get as root installs them); the browser tests will fail" >&2
  fi
fi
