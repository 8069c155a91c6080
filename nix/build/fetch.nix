# A file pinned by its hash (SRI), fetched by Nix's builtin fetcher: a fixed-output derivation, so
# its store path depends only on name and hash. Dependency tarballs (node-deps.nix,
# planned-deps.nix) and an app's kiln.json fetches (default.nix) are all made here.
{ name, url, hash }:
derivation {
  inherit name url;
  builder = "builtin:fetchurl";
  system = "builtin";
  outputHashMode = "flat";
  outputHashAlgo = "";
  outputHash = hash;
  urls = [ url ];
  executable = false;
  unpack = false;
  preferLocalBuild = true;
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
}
