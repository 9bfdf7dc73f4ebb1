# STUB standing in for github:ipetkov/crane in offline structure checks (.ci/nix-checks passes it
# with --override-input). NOT crane: `mkLib pkgs` returns the functions the repository's flake.nix
# calls, with crane's argument names and required arguments (cargoArtifacts where crane requires
# it, a src with Cargo.toml and Cargo.lock), each producing a trivial derivation through the given
# package set's stdenv.mkDerivation. Nothing is vendored or compiled; any other crane function is
# a missing attribute, so a typo fails.
{
  description = "STUB crane for offline structure checks (not crane)";

  outputs =
    { self }:
    {
      mkLib =
        pkgs:
        let
          inherit (pkgs) lib;

          mkCraneLib =
            toolchain:
            let
              requireSrc =
                what: args:
                assert args ? src || throw "crane stub: ${what} needs `src`";
                assert
                  builtins.pathExists (args.src + "/Cargo.toml")
                  || throw "crane stub: ${what}: no Cargo.toml in src";
                assert
                  builtins.pathExists (args.src + "/Cargo.lock")
                  || throw "crane stub: ${what}: no Cargo.lock in src";
                args;

              crateNameFromCargoToml =
                {
                  src ? null,
                  cargoToml ? src + "/Cargo.toml",
                  cargoTomlContents ? builtins.readFile cargoToml,
                  ...
                }:
                let
                  toml = builtins.fromTOML cargoTomlContents;
                in
                {
                  pname = toml.package.name or toml.workspace.metadata.crane.name or "cargo-package";
                  version = toml.package.version or toml.workspace.package.version or "0.0.1";
                };

              mkCargoDerivation =
                {
                  cargoArtifacts,
                  buildPhaseCargoCommand,
                  checkPhaseCargoCommand ? "",
                  installPhaseCommand ? "mkdir -p $out",
                  ...
                }@args:
                let
                  crateName = crateNameFromCargoToml (requireSrc "mkCargoDerivation" args);
                in
                pkgs.stdenv.mkDerivation (
                  builtins.removeAttrs args [
                    "pnameSuffix"
                    "stdenv"
                  ]
                  // {
                    pname = "${args.pname or crateName.pname}${args.pnameSuffix or ""}";
                    version = args.version or crateName.version;
                    nativeBuildInputs = (args.nativeBuildInputs or [ ]) ++ [ toolchain ];
                  }
                );

              buildDepsOnly =
                {
                  cargoBuildCommand ? "cargo build --profile release",
                  cargoCheckCommand ? "cargo check --profile release",
                  cargoExtraArgs ? "--locked",
                  cargoTestCommand ? "cargo test --profile release",
                  ...
                }@args:
                mkCargoDerivation (
                  builtins.removeAttrs (requireSrc "buildDepsOnly" args) [
                    "cargoBuildCommand"
                    "cargoCheckCommand"
                    "cargoExtraArgs"
                    "cargoTestCommand"
                  ]
                  // {
                    cargoArtifacts = null;
                    pnameSuffix = "-deps";
                    buildPhaseCargoCommand =
                      args.buildPhaseCargoCommand or ''
                        ${cargoCheckCommand} ${cargoExtraArgs}
                        ${cargoBuildCommand} ${cargoExtraArgs}
                      '';
                    checkPhaseCargoCommand = args.checkPhaseCargoCommand or "${cargoTestCommand} ${cargoExtraArgs}";
                  }
                );

              buildPackage =
                {
                  cargoExtraArgs ? "--locked",
                  ...
                }@args:
                mkCargoDerivation (
                  builtins.removeAttrs args [ "cargoExtraArgs" ]
                  // {
                    cargoArtifacts = args.cargoArtifacts or (buildDepsOnly args);
                    buildPhaseCargoCommand =
                      args.buildPhaseCargoCommand or "cargo build --profile release ${cargoExtraArgs}";
                  }
                );

              cargoClippy =
                {
                  cargoArtifacts,
                  cargoClippyExtraArgs ? "--all-targets",
                  cargoExtraArgs ? "--locked",
                  ...
                }@args:
                mkCargoDerivation (
                  builtins.removeAttrs args [
                    "cargoClippyExtraArgs"
                    "cargoExtraArgs"
                  ]
                  // {
                    pnameSuffix = "-clippy";
                    buildPhaseCargoCommand = "cargo clippy ${cargoExtraArgs} ${cargoClippyExtraArgs}";
                  }
                );

              cargoFmt =
                {
                  cargoExtraArgs ? "",
                  rustFmtExtraArgs ? "",
                  ...
                }@args:
                mkCargoDerivation (
                  builtins.removeAttrs args [
                    "cargoExtraArgs"
                    "rustFmtExtraArgs"
                  ]
                  // {
                    cargoArtifacts = null;
                    pnameSuffix = "-fmt";
                    buildPhaseCargoCommand = "cargo fmt ${cargoExtraArgs} -- --check ${rustFmtExtraArgs}";
                  }
                );

              cargoTest =
                {
                  cargoArtifacts,
                  cargoExtraArgs ? "--locked",
                  cargoTestExtraArgs ? "",
                  ...
                }@args:
                mkCargoDerivation (
                  builtins.removeAttrs args [
                    "cargoExtraArgs"
                    "cargoTestExtraArgs"
                  ]
                  // {
                    pnameSuffix = "-test";
                    buildPhaseCargoCommand = "";
                    checkPhaseCargoCommand = "cargo test ${cargoExtraArgs} ${cargoTestExtraArgs}";
                  }
                );

              cargoNextest =
                {
                  cargoArtifacts,
                  cargoExtraArgs ? "",
                  cargoNextestExtraArgs ? "",
                  partitions ? 1,
                  partitionType ? "count",
                  ...
                }@args:
                assert partitions >= 1 || throw "crane stub: partitions must be at least 1";
                mkCargoDerivation (
                  builtins.removeAttrs args [
                    "cargoExtraArgs"
                    "cargoNextestExtraArgs"
                    "partitions"
                    "partitionType"
                  ]
                  // {
                    pnameSuffix = "-nextest";
                    buildPhaseCargoCommand = "cargo nextest --version";
                    checkPhaseCargoCommand = "cargo nextest run ${cargoExtraArgs} ${cargoNextestExtraArgs}";
                  }
                );

              # vendorCargoDeps { src | cargoLock | cargoLockContents | cargoLockParsed, ... }: the
              # real one needs a Cargo.lock (in src, or given); here it is only read.
              vendorCargoDeps =
                args:
                let
                  lock =
                    args.cargoLockParsed or (builtins.fromTOML (
                      args.cargoLockContents or (builtins.readFile (
                        args.cargoLock or (
                          assert
                            args ? src || throw "crane stub: vendorCargoDeps needs src or a Cargo.lock";
                          args.src + "/Cargo.lock"
                        )
                      ))
                    ));
                in
                assert lock ? package || throw "crane stub: vendorCargoDeps: Cargo.lock has no packages";
                pkgs.stdenv.mkDerivation {
                  name = "vendor-cargo-deps";
                  packages = builtins.length lock.package;
                };

              devShell =
                {
                  checks ? { },
                  inputsFrom ? [ ],
                  packages ? [ ],
                  ...
                }@args:
                pkgs.mkShell (
                  builtins.removeAttrs args [ "checks" ]
                  // {
                    inputsFrom = builtins.attrValues checks ++ inputsFrom;
                    packages = packages ++ [ toolchain ];
                  }
                );
            in
            {
              inherit
                buildDepsOnly
                buildPackage
                cargoClippy
                cargoFmt
                cargoNextest
                cargoTest
                crateNameFromCargoToml
                devShell
                mkCargoDerivation
                vendorCargoDeps
                ;

              # crane accepts a toolchain or a function of the package set returning one.
              overrideToolchain =
                toolchainArg:
                let
                  chosen = if builtins.isFunction toolchainArg then toolchainArg pkgs else toolchainArg;
                in
                assert lib.isDerivation chosen || throw "crane stub: overrideToolchain needs a derivation";
                mkCraneLib chosen;
            };
        in
        mkCraneLib (
          pkgs.stdenv.mkDerivation {
            pname = "rust-default-toolchain";
            version = "0-stub";
          }
        );
    };
}
