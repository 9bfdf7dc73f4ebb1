# STUB of `import nixpkgs { system; overlays; }`, for offline structure checks only
# (.ci/nix-checks): NOT nixpkgs, and nothing here builds anything useful.
#
# It holds the packages and builders the repository's flake.nix and nix/*.nix use, each a real but
# trivial derivation (its builder writes a placeholder), with the same argument names as nixpkgs'
# own functions (no `...` where nixpkgs has none), so an unknown argument or attribute fails.
# Every builder forces the values it is given (strings, derivations, paths, nested sets), so a
# typo inside an argument, a missing file or a bad interpolation fails evaluation as well.
# Overlays are applied like nixpkgs applies them (final/prev), which is how rust-overlay's stub
# adds `rust-bin`.
{
  system,
  overlays ? [ ],
  config ? { },
}:
let
  lib = import ./lib.nix;

  # Turns any value into a string, forcing everything inside it; functions are skipped.
  force =
    value:
    if builtins.isFunction value then
      "<function>"
    else if builtins.isAttrs value then
      if value ? outPath then
        "${value}"
      else
        builtins.concatStringsSep " " (map (n: "${n}=${force value.${n}}") (builtins.attrNames value))
    else if builtins.isList value then
      builtins.concatStringsSep " " (map force value)
    else if builtins.isPath value then
      if builtins.pathExists value then
        toString value
      else
        throw "nixpkgs stub: path ${toString value} does not exist"
    else if value == null then
      ""
    else if builtins.isBool value then
      (if value then "1" else "0")
    else
      toString value;

  # A real derivation whose builder only writes a placeholder; `args` are forced into it. A
  # fixed-output hash is passed through, so Nix itself parses it when it instantiates the stub.
  # Like a real derivation, the result also carries its arguments as attributes (unforced), so
  # .ci/nix-checks can compare a derivation's environment with what the xtask expects.
  mkStubDrv =
    name: args:
    args
    // derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          "echo 'stub derivation for offline structure checks' > $out"
        ];
        stubArguments = force args;
      }
      // builtins.intersectAttrs {
        outputHash = null;
        outputHashAlgo = null;
        outputHashMode = null;
      } args
    );

  # stdenv.mkDerivation: name or pname+version, overrideAttrs in its three forms, passthru and
  # meta kept on the result as nixpkgs keeps them.
  mkDerivation =
    args:
    let
      name = args.name or "${args.pname}-${args.version}";
      drv = mkStubDrv name (
        builtins.removeAttrs args [
          "passthru"
          "meta"
        ]
      );
    in
    drv
    // (args.passthru or { })
    // {
      meta = args.meta or { };
      overrideAttrs =
        f:
        let
          step = if builtins.isFunction f then f args else f;
          changes = if builtins.isFunction step then step args else step;
        in
        mkDerivation (args // changes);
    };

  # A package that only needs to exist (and be overridable the way flake.nix overrides it).
  mkPackage =
    pname:
    mkDerivation {
      inherit pname;
      version = "0-stub";
    };

  stdenv = {
    inherit mkDerivation;
    hostPlatform = {
      inherit system;
      isDarwin = builtins.match ".*-darwin" system != null;
      isLinux = builtins.match ".*-linux" system != null;
    };
  };

  base = final: {
    inherit lib stdenv;

    runCommand =
      name: env: script:
      mkDerivation (
        env
        // {
          inherit name;
          buildCommand = script;
        }
      );

    writeShellApplication =
      {
        name,
        text,
        runtimeInputs ? [ ],
        meta ? { },
      }:
      mkDerivation {
        inherit
          name
          text
          runtimeInputs
          meta
          ;
      };

    mkShell =
      args:
      mkDerivation (
        args
        // {
          name = args.name or "nix-shell";
        }
      );

    makeWrapper = mkPackage "make-wrapper-hook";
    cacert = mkPackage "nss-cacert";
    curl = mkPackage "curl";
    nodejs = mkPackage "nodejs";
    zig_0_15 = mkPackage "zig";
    awscli2 = mkPackage "awscli2";
    cargo-nextest = mkPackage "cargo-nextest";
    nixfmt = mkPackage "nixfmt";
    rsync = mkPackage "rsync";
    zstd = mkPackage "zstd";

    cargo-zigbuild =
      let
        make =
          { zig }:
          mkDerivation {
            pname = "cargo-zigbuild";
            version = "0-stub";
            inherit zig;
          }
          // {
            override = args: make ({ inherit zig; } // args);
          };
      in
      make { zig = final.zig_0_15; };

    # opentofu.withPlugins (p: [ p.<owner>_<name> ]): providers use nixpkgs' current
    # owner_name attribute names; only the one this project needs exists here.
    opentofu =
      let
        providers = {
          hashicorp_aws = mkPackage "terraform-provider-aws";
        };
      in
      mkPackage "opentofu"
      // {
        withPlugins =
          select:
          mkDerivation {
            pname = "opentofu-with-plugins";
            version = "0-stub";
            plugins = select providers;
          };
      };

    # importNpmLock as nixpkgs has it: a functor, buildNodeModules, and the hooks. The functor
    # checks what the real one leaves to `npm install` at build time: every registry package needs
    # a `resolved` URL or a packageSourceOverride, or the offline install fails.
    importNpmLock =
      let
        importLock =
          {
            fetcherOpts ? { },
            npmRoot ? null,
            package ? lib.importJSON (npmRoot + "/package.json"),
            packageLock ? lib.importJSON (npmRoot + "/package-lock.json"),
            packageSourceOverrides ? { },
            pname ? package.name or "unknown",
            version ? package.version or "0.0.0",
          }:
          let
            unresolved = builtins.filter (
              path:
              let
                module = packageLock.packages.${path};
              in
              path != ""
              && !(module.link or false)
              && !(module ? resolved)
              && !(packageSourceOverrides ? ${path})
            ) (builtins.attrNames packageLock.packages);
          in
          assert
            unresolved == [ ]
            || throw "importNpmLock (stub): no source for ${builtins.concatStringsSep ", " unresolved}";
          mkDerivation {
            name = "${pname}-${version}-sources";
            sources = builtins.attrValues packageSourceOverrides;
            inherit fetcherOpts;
          };
      in
      {
        __functor = _: importLock;
        buildNodeModules =
          {
            nodejs,
            derivationArgs ? { },
            npmRoot ? null,
            package ? lib.importJSON (npmRoot + "/package.json"),
            packageLock ? lib.importJSON (npmRoot + "/package-lock.json"),
          }:
          mkDerivation (
            {
              pname = "${package.name or "unknown"}-node-modules";
              version = package.version or "0.0.0";
              npmDeps = importLock { inherit npmRoot package packageLock; };
              nativeBuildInputs = [ nodejs ];
            }
            // derivationArgs
          );
        npmConfigHook = mkPackage "npm-config-hook";
        linkNodeModulesHook = mkPackage "link-node-modules-hook";
      };
  };

  pkgs = builtins.foldl' (prev: overlay: prev // overlay pkgs prev) (base pkgs) overlays;
in
assert config == { } || throw "nixpkgs stub: flake.nix passes no config";
pkgs
