#!/usr/bin/env bash
# Compile the plain-Java core and its JUnit 4 tests with javac, run them with JUnitCore.
# Needs a JDK (javac >= 11), Debian's junit4 + hamcrest jars (apt-get install junit4) and org.json as on
# Android (apt-get install libandroid-json-org-java: Android libcore's org.json, /usr/share/java/json-android.jar).
#   android_demo/core/run_tests.sh                     # goldens from src/test/resources/golden
#   GOLDEN_DIR=/tmp/golden android_demo/core/run_tests.sh   # other goldens (pytest uses this)
#   SIDECAR_FILES=a.json:b.json ...                          # also parse these export sidecars
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
JAVA_LIB="${JAVA_LIB:-/usr/share/java}"
junit="$JAVA_LIB/junit4.jar"
hamcrest="$JAVA_LIB/hamcrest-core.jar"
[ -f "$hamcrest" ] || hamcrest="$JAVA_LIB/hamcrest.jar"
json="$JAVA_LIB/json-android.jar"
for jar in "$junit" "$hamcrest"; do
  [ -f "$jar" ] || { echo "missing $jar: apt-get install -y --no-install-recommends junit4" >&2; exit 3; }
done
[ -f "$json" ] || { echo "missing $json: apt-get install -y --no-install-recommends libandroid-json-org-java" >&2; exit 3; }
command -v javac >/dev/null || { echo "javac not found: install a JDK (openjdk-17-jdk-headless)" >&2; exit 3; }

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp="$junit:$hamcrest"
# --release 11: the app module compiles these sources for Android too; keep to Java 11.
# org.json is part of android.jar on the phone: on the JVM it is only on the classpath, never packaged.
javac --release 11 -Xlint:all -Werror -cp "$json" -d "$build/main" $(find "$here/src/main/java" -name '*.java')
cp="$cp:$json"
javac --release 11 -d "$build/test" -cp "$build/main:$cp" $(find "$here/src/test/java" -name '*.java')
tests=$(cd "$here/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
java -Dgolden.dir="${GOLDEN_DIR:-$here/src/test/resources/golden}" -Dsidecar.files="${SIDECAR_FILES:-}" -cp "$build/main:$build/test:$cp" \
  org.junit.runner.JUnitCore $tests
