#!/usr/bin/env bash
# Breaking-change gate for the API contract (part of `make contract-check`).
#
# Compares openapi.yaml with the version at a base git ref using oasdiff (the Go tool
# pinned in go.mod) and prints oasdiff's report. Breaking changes (oasdiff level ERR) fail
# the check unless the new spec's info.version has a greater major than the base's AND
# the changelog has a section for the new version ("## <version>") that mentions
# "Breaking". Warnings are printed but never fail.
#
# Usage (from anywhere; paths are relative to the current directory):
#   .ci/contract/breaking.sh                       # openapi.yaml vs the base ref below
#   CONTRACT_BASE=<ref> .ci/contract/breaking.sh   # vs <ref>:openapi.yaml
#   .ci/contract/breaking.sh --base-file A --new-file B --changelog C   # no git at all
# Options:
#   --base-ref REF     git ref of the base (default: $CONTRACT_BASE, else the merge-base
#                      with origin/main when that differs from HEAD, else HEAD~1)
#   --base-file FILE   base spec file instead of a git ref
#   --new-file FILE    new spec (default: <repo>/openapi.yaml, the working tree)
#   --changelog FILE   changelog (default: <repo>/CHANGELOG.md)
#   --repo DIR         git repository holding openapi.yaml (default: this repository)
# Exit status: 0 pass, 1 breaking change not allowed (or bad input), 2 usage error.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
module_root=$(cd "$script_dir/../.." && pwd) # where go.mod pins oasdiff

repo=$module_root
base_ref=${CONTRACT_BASE:-}
base_file=
new_file=
changelog=
spec_path=openapi.yaml

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "contract: $*" >&2; exit 1; }

abs() { # absolute path of $1 relative to the caller's directory
  case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac
}

while (($#)); do
  case $1 in
    --base-ref) base_ref=${2:?--base-ref needs a value}; shift 2 ;;
    --base-file) base_file=$(abs "${2:?--base-file needs a value}"); shift 2 ;;
    --new-file) new_file=$(abs "${2:?--new-file needs a value}"); shift 2 ;;
    --changelog) changelog=$(abs "${2:?--changelog needs a value}"); shift 2 ;;
    --repo) repo=$(abs "${2:?--repo needs a value}"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "contract: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
new_file=${new_file:-$repo/$spec_path}
changelog=${changelog:-$repo/CHANGELOG.md}
[[ -f $new_file ]] || die "new spec $new_file does not exist"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- the base spec ---------------------------------------------------------------------
if [[ -n $base_file ]]; then
  [[ -f $base_file ]] || die "base spec $base_file does not exist"
  base_label=$base_file
else
  git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || die "$repo is not a git repository; pass --base-file"
  if [[ -z $base_ref ]]; then
    head=$(git -C "$repo" rev-parse HEAD)
    if mb=$(git -C "$repo" merge-base HEAD origin/main 2>/dev/null) && [[ $mb != "$head" ]]; then
      base_ref=$mb
      how="merge-base with origin/main"
    elif git -C "$repo" rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
      base_ref=HEAD~1
      how="previous commit"
    else
      echo "contract: HEAD has no parent commit (first commit or shallow clone) and no origin/main to compare with;"
      echo "contract: set CONTRACT_BASE to compare with a specific ref. Nothing to compare: pass."
      exit 0
    fi
  else
    how="CONTRACT_BASE / --base-ref"
    git -C "$repo" rev-parse --verify --quiet "$base_ref^{commit}" >/dev/null ||
      die "base ref '$base_ref' does not name a commit (a shallow clone may lack it: git fetch --unshallow)"
  fi
  base_desc="$base_ref ($(git -C "$repo" rev-parse --short "$base_ref^{commit}"), $how)"
  if ! git -C "$repo" cat-file -e "$base_ref:$spec_path" 2>/dev/null; then
    echo "contract: the base $base_desc has no $spec_path: every operation is new. Pass."
    exit 0
  fi
  base_file=$tmp/base-openapi.yaml
  git -C "$repo" show "$base_ref:$spec_path" >"$base_file"
  base_label="$spec_path at $base_desc"
fi

# info.version of a block-style YAML spec: the `version:` key directly under top-level `info:`.
spec_version() {
  awk '
    /^info:[[:space:]]*(#.*)?$/ { in_info = 1; next }
    in_info && /^[^[:space:]#]/ { exit }
    in_info && /^[[:space:]]+[^[:space:]#]/ {
      match($0, /^[[:space:]]+/)
      if (indent == 0) indent = RLENGTH
      if (RLENGTH == indent && $0 ~ /^[[:space:]]+version:/) {
        v = $0
        sub(/^[[:space:]]+version:[[:space:]]*/, "", v)
        sub(/[[:space:]]+#.*$/, "", v)
        sub(/[[:space:]]+$/, "", v)
        gsub(/^["\047]|["\047]$/, "", v)
        print v
        exit
      }
    }
  ' "$1"
}

major_of() { # "v2.1.0" -> 2; empty when not a number
  local v=${1#v}
  v=${v%%.*}
  [[ $v =~ ^[0-9]+$ ]] && echo "$((10#$v))" || true
}

# Does the changelog have a "## <version>" section (also "## [v<version>] - date") that
# mentions "breaking" (any case) before the next heading of the same or higher level?
changelog_records_break() {
  local version=$1 file=$2
  [[ -f $file ]] || return 1
  awk -v ver="$version" '
    function esc(s) { gsub(/[][\\.^$*+?(){}|]/, "\\\\&", s); return s }
    BEGIN { re = "^##+[[:space:]]+\\[?v?" esc(ver) "\\]?([[:space:]]|$)" }
    /^#+[[:space:]]/ {
      match($0, /^#+/)
      if (in_sec && RLENGTH <= level) in_sec = 0
      if (!in_sec && $0 ~ re) { in_sec = 1; level = RLENGTH; next }
    }
    in_sec && tolower($0) ~ /breaking/ { found = 1; exit }
    END { exit found ? 0 : 1 }
  ' "$file"
}

base_version=$(spec_version "$base_file")
new_version=$(spec_version "$new_file")

echo "contract: base $base_label (info.version ${base_version:-?})"
echo "contract: new  $new_file (info.version ${new_version:-?})"
echo

# ---- oasdiff ---------------------------------------------------------------------------
set +e
(cd "$module_root" && go tool -modfile=tools/go.mod oasdiff breaking "$base_file" "$new_file" --fail-on ERR --format text --color never)
rc=$?
set -e
echo
case $rc in
  0)
    echo "contract: no breaking changes. Pass."
    exit 0
    ;;
  1) ;; # breaking changes (level ERR) found
  *) die "oasdiff failed (exit $rc): see its message above" ;;
esac

# ---- breaking changes: allowed only with a new major version recorded in the changelog -----
base_major=$(major_of "${base_version:-}")
new_major=$(major_of "${new_version:-}")
changelog_name=$(basename "$changelog")

if [[ -z $base_major || -z $new_major ]]; then
  die "BREAKING CHANGES, and info.version could not be read as MAJOR.MINOR.PATCH (base '${base_version:-}', new '${new_version:-}')."
fi
if ((new_major <= base_major)); then
  echo "contract: FAIL: the changes above break existing clients (info.version ${base_version} -> ${new_version})." >&2
  echo "contract: either make the change backward compatible (see each finding above: add instead of" >&2
  echo "contract: remove or rename, make new parameters and request fields optional, do not change enums" >&2
  echo "contract: that responses use), or make it a new major version: set" >&2
  echo "contract: info.version to $((base_major + 1)).0.0 in $(basename "$new_file") and add a '## $((base_major + 1)).0.0' section" >&2
  echo "contract: to $changelog_name whose 'Breaking' notes list each change and what clients must do." >&2
  exit 1
fi
if ! changelog_records_break "$new_version" "$changelog"; then
  echo "contract: FAIL: breaking changes with a new major version ${base_version} -> ${new_version}, but" >&2
  echo "contract: $changelog_name has no '## ${new_version}' section that mentions 'Breaking'." >&2
  echo "contract: add one that lists each breaking change above and what clients must do." >&2
  exit 1
fi
echo "contract: breaking changes accepted: info.version ${base_version} -> ${new_version} (new major) and $changelog_name records the break under '## ${new_version}'. Pass."
