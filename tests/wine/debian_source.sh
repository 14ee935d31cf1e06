#!/usr/bin/env bash
# Sourced by the scripts that cross-build a library for mingw-w64 from
# Debian's own source package (build_sodium.sh, build_openssl.sh).
#
#   debian_source_init DIR       an apt state of our own in DIR/apt, with a
#                                deb-src entry for each Debian suite the
#                                system's deb entries name
#   debian_source_versions PKG   the source versions it lists, newest first
#   debian_source_fetch PKG DIR [VERSION]
#                                apt-get source PKG(=VERSION) into DIR;
#                                prints the unpacked tree
#
# The system's apt configuration is neither needed nor changed.

debian_source_init() {
  local apt_dir=$1/apt f
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  : >"$apt_dir/sources.list"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\(http[^ ]*debian[^ ]*\) \([^ ]*\) .*/deb-src \2 \3 main/p' "$f" \
      >>"$apt_dir/sources.list"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: the Types/URIs/Suites stanzas of Debian's archive.
    awk '
      /^URIs:/ { uri = $2 }
      /^Suites:/ { $1 = ""; suites = $0 }
      /^$/ { emit() }
      END { emit() }
      function emit(   n, s, i) {
        if (uri ~ /debian/ && suites != "") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) print "deb-src " uri " " s[i] " main"
        }
        uri = ""; suites = ""
      }' "$f" >>"$apt_dir/sources.list"
  done
  if [ ! -s "$apt_dir/sources.list" ]; then
    echo "debian_source: no Debian archive in /etc/apt to take the source from" >&2
    return 1
  fi
  debian_source_apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1" -q)
  apt-get "${debian_source_apt_opts[@]}" update >/dev/null
}

# The source versions the archive lists, newest first (a mirror may lack the
# newest, so a caller tries them in turn).
debian_source_versions() {
  apt-cache "${debian_source_apt_opts[@]}" showsrc "$1" 2>/dev/null |
    awk '/^Version:/ { print $2 }' | sort -rV | uniq
}

debian_source_fetch() {
  local pkg=$1 src=$2 want=${3:+=$3} tree
  rm -rf "$src"
  mkdir -p "$src"
  (cd "$src" && apt-get "${debian_source_apt_opts[@]}" source "$pkg$want" >/dev/null 2>&1) || return 1
  tree=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name "$pkg-*" | head -n 1)
  if [ -z "$tree" ]; then
    echo "debian_source: apt-get source $pkg gave no source tree" >&2
    return 1
  fi
  echo "$tree"
}
