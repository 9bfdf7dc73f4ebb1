# The Node packages of package.json/package-lock.json (dynalite and its dependencies) as a
# node_modules tree in the store: the tests and the local twin run dynalite from it, so nothing is
# downloaded at test or run time. The result has node_modules/ at its top (importNpmLock's layout).
#
# Why not a plain `importNpmLock.buildNodeModules { npmRoot = ./.; }`: the lockfile carries no
# `resolved` URLs (npm here runs with omit-lockfile-registry-resolved, which keeps registry hosts
# out of the repository), and importNpmLock only fetches entries that have one. So each tarball is
# fetched here by a fixed-output derivation whose hash is the lockfile's own `integrity` (no hash
# is written by hand), from the registry npm itself is configured with (npm's default, or
# NPM_CONFIG_REGISTRY when set where the build runs), and handed to importNpmLock as a
# packageSourceOverride. npm's tarball layout is <registry>/<name>/-/<unscoped name>-<version>.tgz.
{
  lib,
  importNpmLock,
  runCommand,
  cacert,
  curl,
  nodejs,
  packageJSON,
  packageLockJSON,
}:
let
  package = lib.importJSON packageJSON;
  packageLock = lib.importJSON packageLockJSON;

  # "node_modules/a/node_modules/@scope/b" -> "@scope/b"
  nameOf = path: lib.last (lib.splitString "node_modules/" path);

  fetchTarball =
    path: module:
    let
      name = nameOf path;
      file = "${lib.last (lib.splitString "/" name)}-${module.version}.tgz";
    in
    # The store name must end in .tgz: npm treats a `file:` dependency as a tarball by its suffix.
    runCommand "${lib.replaceStrings [ "@" "/" ] [ "" "-" ] name}-${module.version}.tgz"
      {
        nativeBuildInputs = [
          curl
          nodejs
        ];
        outputHashMode = "flat";
        outputHash = module.integrity;
        impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ [ "NPM_CONFIG_REGISTRY" ];
        SSL_CERT_FILE = "${cacert}/etc/ssl/certs/ca-bundle.crt";
        tarball = "${name}/-/${file}";
      }
      ''
        export HOME="$TMPDIR"
        registry="''${NPM_CONFIG_REGISTRY:-$(npm config get registry)}"
        curl --fail --silent --show-error --location --retry 3 \
          --output "$out" "''${registry%/}/$tarball"
      '';

  # Registry packages: not the root project, not workspace links, not already resolved elsewhere.
  fromRegistry = lib.filterAttrs (
    path: module: path != "" && !(module.link or false) && !(module ? resolved)
  ) packageLock.packages;
in
importNpmLock.buildNodeModules {
  inherit nodejs package packageLock;
  derivationArgs.npmDeps = importNpmLock {
    inherit package packageLock;
    packageSourceOverrides = lib.mapAttrs fetchTarball fromRegistry;
  };
}
