# Sourced by bin/dependencies and bin/compile. node-gyp's generated build files (Makefile,
# config.gypi, *.mk, .deps, object files) record the absolute build directory and are not needed to
# load an addon: they go, and the compiled build/Release/*.node stays. (kiln check found them: the
# same app built at another path gave another slug.)
drop_gyp_build_files() {
  find "$1" -type f -path '*/build/config.gypi' | while read -r cfg; do
    b=$(dirname "$cfg")
    rm -rf "$b/Makefile" "$b/config.gypi" "$b"/*.mk "$b/Release/.deps" "$b/Release/obj.target" \
      "$b/Debug/.deps" "$b/Debug/obj.target"
  done
}
