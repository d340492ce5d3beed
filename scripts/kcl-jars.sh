#!/usr/bin/env bash
# Resolves the KCL MultiLangDaemon's classpath with Maven into a jar directory (a build output, never
# committed). Re-resolves only when scripts/kcl/pom.xml changed. Prints the jar directory.
#   KCL_JAR_DIR  where the jars go (default: <repo>/.cache/kcl-jars)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jar_dir="${KCL_JAR_DIR:-$root/.cache/kcl-jars}"
pom="$root/scripts/kcl/pom.xml"
stamp="$jar_dir/.pom.sha256"
want="$(sha256sum "$pom" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$jar_dir/amazon-kinesis-client-multilang-*.jar" >/dev/null; then
  echo "$jar_dir"
  exit 0
fi
command -v mvn >/dev/null || { echo "kcl-jars: Maven (mvn) is required to resolve the KCL daemon's jars" >&2; exit 1; }
command -v java >/dev/null || { echo "kcl-jars: a Java runtime (java) is required to run the KCL daemon" >&2; exit 1; }
echo "kcl-jars: resolving the KCL MultiLangDaemon classpath with Maven into $jar_dir" >&2
tmp="$jar_dir.tmp.$$"
rm -rf "$tmp"
if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
  rm -rf "$tmp"
  echo "kcl-jars: Maven could not resolve the daemon's dependencies (see the output above)" >&2
  exit 1
fi
echo "$want" > "$tmp/.pom.sha256"
rm -rf "$jar_dir"
mkdir -p "$(dirname "$jar_dir")"
mv "$tmp" "$jar_dir"
echo "kcl-jars: $(ls "$jar_dir"/*.jar | wc -l) jars ready" >&2
echo "$jar_dir"
