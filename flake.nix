{
  description = "orderflow: a serverless AWS order pipeline in Rust (aarch64 Lambdas, producer, local twin)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  # Offline structure check of this file (stand-in inputs, no builds): .ci/nix-checks.
  outputs =
    {
      self,
      nixpkgs,
      crane,
      rust-overlay,
    }:
    let
      # Linux hosts build everything. aarch64-darwin is evaluated as well (cargo-zigbuild links
      # the Lambdas from macOS too), but nobody has built on it yet.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];

      # The Lambdas' binaries, which are also the zips' names and the function names after the
      # prefix: tofu/lambdas.json, the one list OpenTofu, xtask, the twin and CI read too.
      lambdaFile = builtins.fromJSON (builtins.readFile ./tofu/lambdas.json);
      lambdaNames = [ lambdaFile.consumer ] ++ builtins.attrValues lambdaFile.transformers;

      # The workspace packages that hold them (the [[bin]] tables of crates/*/Cargo.toml, but for
      # the root manifest's workspace.exclude), package name -> its Lambdas: each package is built
      # by a cargo invocation of its own, as `Lambdas::packages` in crates/xtask/src/lambdas.rs
      # does, so no binary gets another package's dependency features.
      lambdaPackages =
        let
          excluded = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).workspace.exclude or [ ];
          crateDirs = builtins.filter (
            dir:
            !(builtins.elem "crates/${dir}" excluded) && builtins.pathExists (./crates + "/${dir}/Cargo.toml")
          ) (builtins.attrNames (builtins.readDir ./crates));
          manifest = dir: builtins.fromTOML (builtins.readFile (./crates + "/${dir}/Cargo.toml"));
          lambdasOf =
            dir: builtins.filter (bin: builtins.elem bin lambdaNames) (map (bin: bin.name) ((manifest dir).bin or [ ]));
        in
        builtins.listToAttrs (
          builtins.filter (package: package.value != [ ]) (
            map (dir: {
              name = (manifest dir).package.name;
              value = lambdasOf dir;
            }) crateDirs
          )
        );

      # Lambda runs provided.al2023 on Graviton: aarch64 with glibc 2.34.
      lambdaTarget = "aarch64-unknown-linux-gnu";

      perSystem =
        system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          inherit (pkgs) lib;

          # The toolchain of rust-toolchain.toml (channel, rustfmt, clippy) plus the Lambdas'
          # standard library. A function of the package set, as crane's cross examples pass it.
          craneLib = (crane.mkLib pkgs).overrideToolchain (
            p:
            (p.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml).override {
              targets = [ lambdaTarget ];
            }
          );

          # One zig for cargo-zigbuild (whose wrapper puts its zig first on PATH) and the shell.
          # Not nixpkgs' default zig: that is 0.16 since April 2026, whose `zig ar` cannot create
          # archives, so ring and aws-lc-sys (both in Cargo.lock) fail to build unless
          # cargo-zigbuild works around it (rust-cross/cargo-zigbuild#433; 0.15.2 works).
          zig = pkgs.zig_0_15;
          cargo-zigbuild = pkgs.cargo-zigbuild.override { inherit zig; };
          nodejs = pkgs.nodejs;
          # The one OpenTofu of the project: the dev shell has it, and the workflows install it
          # with `nix build .#tofu` (no setup-opentofu), so both run the version flake.lock's
          # nixpkgs pins. No bundled provider: `tofu init` installs the AWS provider from the
          # registry and checks it against tofu/.terraform.lock.hcl, in the shell as in CI.
          opentofu = pkgs.opentofu;

          # dynalite and its dependencies, from package-lock.json (see the file for why it is not
          # a plain importNpmLock call).
          nodeModules = import ./nix/node-modules.nix {
            inherit (pkgs)
              lib
              importNpmLock
              runCommand
              cacert
              curl
              ;
            inherit nodejs;
            packageJSON = ./package.json;
            packageLockJSON = ./package-lock.json;
          };

          # What cargo sees. The whole workspace in every derivation: Cargo.toml names its
          # default-members by path, so leaving a crate out of a per-crate fileset would break
          # cargo itself. crates/domain includes ../../../sql/tables.json and schema/ at compile
          # time, the twin sql/queries/, tofu/pipeline.json (the settings shared with OpenTofu)
          # and tofu/lambdas.json (the Lambdas' names, also read by xtask), so they are sources too.
          cargoSources = [
            ./Cargo.toml
            ./Cargo.lock
            ./rust-toolchain.toml
            ./.cargo
            ./crates
            ./crates/domain/schema
            ./sql
            ./tofu/pipeline.json
            ./tofu/pipeline.bounds.json
            ./tofu/lambdas.json
          ];
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions cargoSources;
          };
          # crates/infra-tests read the OpenTofu configuration.
          testSrc = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions (cargoSources ++ [ ./tofu ]);
          };

          # The crates of Cargo.lock, vendored once for every derivation. Passed explicitly so the
          # Lambda build can remap this directory: its store path depends on the build machine's
          # system (it is built, not fetched), and the crates' panic locations and C `__FILE__`
          # strings would otherwise carry it into the binaries.
          cargoVendorDir = craneLib.vendorCargoDeps { inherit src; };

          commonArgs = {
            inherit src cargoVendorDir;
            pname = "orderflow";
            inherit (craneLib.crateNameFromCargoToml { inherit src; }) version;
            strictDeps = true;
            # Every member, not only default-members (xtask and infra-tests have dependencies).
            cargoExtraArgs = "--locked --workspace";
          };

          # Dependencies are built once per way they are compiled, and every derivation below
          # reuses one of these through `commonArgs // { cargoArtifacts = ...; }`:
          #   devArtifacts      host, dev profile: clippy and the tests, as `cargo xtask test` runs
          #                     them (the release profile's fat LTO would make every test link slow)
          #   producerArtifacts host, release profile: the producer alone (`nix run .#producer`
          #                     does not compile the twin's DataFusion)
          #   releaseArtifacts  host, release profile: the twin
          #   lambdaArtifacts   aarch64 through cargo-zigbuild, release profile: the Lambdas
          devArgs = commonArgs // {
            CARGO_PROFILE = "dev";
          };
          devArtifacts = craneLib.buildDepsOnly (devArgs // { pname = "orderflow-dev"; });

          hasTwin = builtins.pathExists ./crates/twin/Cargo.toml;
          producerArtifacts = craneLib.buildDepsOnly (
            commonArgs
            // {
              pname = "orderflow-producer";
              cargoExtraArgs = "--locked -p orderflow-producer";
              doCheck = false;
            }
          );
          releaseArtifacts = craneLib.buildDepsOnly (
            commonArgs
            // {
              pname = "orderflow-release";
              cargoExtraArgs = "--locked -p orderflow-twin";
              doCheck = false;
            }
          );

          producer = craneLib.buildPackage (
            commonArgs
            // {
              cargoArtifacts = producerArtifacts;
              pname = "orderflow-producer";
              cargoExtraArgs = "--locked -p orderflow-producer";
              doCheck = false; # checks.tests runs every test
              meta.mainProgram = "producer";
            }
          );

          # The local twin (crates/twin, binary `orderflow`), once that crate exists.
          twin = craneLib.buildPackage (
            commonArgs
            // {
              cargoArtifacts = releaseArtifacts;
              pname = "orderflow";
              cargoExtraArgs = "--locked -p orderflow-twin";
              doCheck = false;
              nativeBuildInputs = [ pkgs.makeWrapper ];
              # The twin starts dynalite with node: give it node and the locked node_modules, so
              # nothing is downloaded when it runs (ORDERFLOW_NODE_MODULES may still be overridden).
              postInstall = ''
                wrapProgram $out/bin/orderflow \
                  --prefix PATH : ${lib.makeBinPath [ nodejs ]} \
                  --set-default ORDERFLOW_NODE_MODULES ${nodeModules}/node_modules
              '';
              meta.mainProgram = "orderflow";
            }
          );

          # `cargo xtask lambdas` (crates/xtask/src/lambdas.rs) builds the Lambdas, here exactly as
          # in CI (.ci/run) except for the toolchain (rust-overlay's, with the target's standard
          # library, so no --sysroot):
          #   cargo zigbuild --target aarch64-unknown-linux-gnu.2.34 --locked --release -p <package> --bin ...
          # once for each package of lambdaPackages,
          # from the source root <src>, into <src>/target ($ORDERFLOW_CACHE/lambda-build-here),
          # with SOURCE_DATE_EPOCH=1700000000, the zig caches in $ORDERFLOW_CACHE/zig/, and every
          # build-machine path remapped to a fixed name, in this order (rustc applies the last
          # matching remap), for Rust and for the C code of ring and aws-lc-sys:
          #   $CARGO_HOME=/cargo <src>=/build <src>/target=/target $ORDERFLOW_CARGO_VENDOR_DIR=/vendor
          #   CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS = --remap-path-prefix=<each>
          #     -C link-arg=-Wl,--build-id=none
          #   CFLAGS_aarch64_unknown_linux_gnu = -ffile-prefix-map=<each>
          # The vendor directory's store path depends on the build machine's system; remapped, the
          # binaries are the same on every machine. The xtask then fails if any binary still
          # contains a build-machine path (/nix/store, <src>, $HOME, $CARGO_HOME, the vendor
          # directory, the zig caches). cargo reuses the dependency build below only if all of
          # that is the same there, so lambdaDepsCommand repeats it: keep them in step with the
          # xtask (a mismatch costs a rebuild of the dependencies, not a wrong result).
          lambdaZigTarget = "${lambdaTarget}.2.34";
          lambdaArgs = commonArgs // {
            pname = "orderflow-lambdas";
            nativeBuildInputs = [ cargo-zigbuild ];
            ORDERFLOW_LINKER = "zigbuild";
            ORDERFLOW_CARGO_VENDOR_DIR = cargoVendorDir;
            SOURCE_DATE_EPOCH = "1700000000";
            # Both derivations build in <build dir>/lambda-build-here (the dependency build's dummy
            # sources would otherwise unpack elsewhere): the remapped source path is then the same
            # in both, and with ORDERFLOW_CACHE=<build dir> (preBuild) the xtask's target directory
            # is crane's ./target, where the dependency artifacts are unpacked.
            postUnpack = ''
              if [ "$sourceRoot" != lambda-build-here ]; then
                mv "$sourceRoot" lambda-build-here
                sourceRoot=lambda-build-here
              fi
            '';
            # zig and cargo-zigbuild keep caches under $HOME or $XDG_CACHE_HOME, which the sandbox
            # does not provide: the xtask's fixed directories under $ORDERFLOW_CACHE/zig, exported
            # here for the dependency build too, so the compiler wrapper paths (which cargo
            # fingerprints) are the same in both derivations.
            preBuild = ''
              export ORDERFLOW_CACHE="$(dirname "$(pwd -P)")"
              export HOME="$TMPDIR/home" XDG_CACHE_HOME="$TMPDIR/cache"
              export ZIG_GLOBAL_CACHE_DIR="$ORDERFLOW_CACHE/zig/global"
              export ZIG_LOCAL_CACHE_DIR="$ORDERFLOW_CACHE/zig/local"
              export CARGO_ZIGBUILD_CACHE_DIR="$ORDERFLOW_CACHE/zig/cargo-zigbuild"
              mkdir -p "$HOME" "$XDG_CACHE_HOME" "$ZIG_GLOBAL_CACHE_DIR" "$ZIG_LOCAL_CACHE_DIR" \
                "$CARGO_ZIGBUILD_CACHE_DIR"
            '';
            doCheck = false;
          };

          # The Lambdas' dependencies for aarch64, compiled exactly as the xtask compiles the
          # Lambdas (see above), plus the xtask's own host dependencies (`cargo xtask` is
          # `cargo run --locked --package xtask`, dev profile).
          lambdaDepsCommand = ''
            src=$(pwd -P)
            rustflags="" cflags=""
            for remap in "$CARGO_HOME=/cargo" "$src=/build" "$src/target=/target" \
              "$ORDERFLOW_CARGO_VENDOR_DIR=/vendor"; do
              rustflags="$rustflags --remap-path-prefix=$remap"
              cflags="$cflags -ffile-prefix-map=$remap"
            done
            export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="''${rustflags# } -C link-arg=-Wl,--build-id=none"
            export CFLAGS_aarch64_unknown_linux_gnu="''${cflags# }"
            ${lib.concatStringsSep "\n" (
              builtins.attrValues (
                builtins.mapAttrs (
                  package: bins:
                  "cargo zigbuild --target ${lambdaZigTarget} --locked --release -p ${package} ${
                    lib.concatMapStringsSep " " (bin: "--bin ${bin}") bins
                  }"
                ) lambdaPackages
              )
            )}
            unset CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS CFLAGS_aarch64_unknown_linux_gnu
            cargo build --locked --package xtask
          '';
          lambdaArtifacts = craneLib.buildDepsOnly (
            lambdaArgs // { buildPhaseCargoCommand = lambdaDepsCommand; }
          );

          # The deployable zips and SHA256SUMS, written by the same entry point CI and developers
          # use outside Nix. `nix build .#lambdas --rebuild` builds it again and fails if any byte
          # differs; checks.reproducible compares two independent builds.
          lambdas = craneLib.mkCargoDerivation (
            lambdaArgs
            // {
              cargoArtifacts = lambdaArtifacts;
              buildPhaseCargoCommand = ''
                cargo xtask lambdas --out-dir "$TMPDIR/lambdas"
              '';
              installPhaseCommand = ''
                mkdir -p "$out"
                cp "$TMPDIR/lambdas"/*.zip "$TMPDIR/lambdas/SHA256SUMS" "$out/"
              '';
              doInstallCargoArtifacts = false;
              dontFixup = true; # the zips are final: nothing to strip or patch
            }
          );

          # A second build of the same source that Nix cannot answer from the first: one job
          # instead of all cores, another time zone and umask.
          lambdasAgain = lambdas.overrideAttrs (old: {
            pname = "orderflow-lambdas-again";
            CARGO_BUILD_JOBS = "1";
            TZ = "America/St_Johns";
            preBuild = old.preBuild + "umask 077\n";
          });

          # One Lambda's zip (and its SHA256SUMS line), taken from the one build of all five.
          lambdaZip =
            name:
            pkgs.runCommand "orderflow-lambda-${name}" { } ''
              mkdir -p "$out"
              cp ${lambdas}/${name}.zip "$out/"
              grep -E '[ *]${name}[.]zip$' ${lambdas}/SHA256SUMS > "$out/SHA256SUMS"
            '';

          demo = pkgs.writeShellApplication {
            name = "orderflow-demo";
            text =
              if hasTwin then
                ''exec ${twin}/bin/orderflow demo "$@"''
              else
                ''
                  echo "orderflow-demo: the local twin (crates/twin, binary orderflow) is not in this checkout yet" >&2
                  exit 1
                '';
          };
        in
        {
          packages =
            lib.genAttrs lambdaNames lambdaZip
            // {
              inherit lambdas producer;
              default = lambdas;
              # The workflows' OpenTofu (`nix build .#tofu`), the same derivation as the shell's.
              tofu = opentofu;
            }
            // lib.optionalAttrs hasTwin { orderflow = twin; };

          apps = {
            producer = {
              type = "app";
              program = "${producer}/bin/producer";
              meta.description = "Load generator: seeded fake orders sent to the ingestion API";
            };
            demo = {
              type = "app";
              program = "${demo}/bin/orderflow-demo";
              meta.description = "The local twin's demo (orderflow demo), with dynalite from the lockfile";
            };
          };

          checks = {
            fmt = craneLib.cargoFmt { inherit (commonArgs) src pname version; };

            clippy = craneLib.cargoClippy (
              devArgs
              // {
                cargoArtifacts = devArtifacts;
                cargoClippyExtraArgs = "--all-targets -- --deny warnings";
              }
            );

            # `cargo test --workspace` (doc tests included), as CI runs it. The DynamoDB tests start
            # dynalite from <repository>/node_modules with node, on loopback only.
            tests = craneLib.cargoTest (
              devArgs
              // {
                src = testSrc;
                cargoArtifacts = devArtifacts;
                nativeBuildInputs = [ nodejs ];
                ORDERFLOW_NODE_MODULES = "${nodeModules}/node_modules";
                preCheck = ''
                  ln -s ${nodeModules}/node_modules node_modules
                '';
                __darwinAllowLocalNetworking = true;
              }
            );

            reproducible = pkgs.runCommand "orderflow-lambdas-reproducible" { } ''
              for name in ${lib.concatStringsSep " " lambdaNames}; do
                test -f ${lambdas}/$name.zip || { echo "missing $name.zip" >&2; exit 1; }
              done
              (cd ${lambdas} && sha256sum --check SHA256SUMS)
              diff -r ${lambdas} ${lambdasAgain}
              echo "two independent builds of the Lambda zips are identical" > "$out"
            '';
          };

          devShells.default = craneLib.devShell {
            # Inputs of every check, plus the toolchain (cargo, clippy, rustfmt, the aarch64 std).
            checks = self.checks.${system};
            packages = [
              zig
              cargo-zigbuild
              opentofu
              nodejs
              pkgs.awscli2
              pkgs.cargo-nextest
              pkgs.importNpmLock.linkNodeModulesHook
            ];
            # linkNodeModulesHook links these into ./node_modules when the shell starts, so
            # `cargo test` finds dynalite without npm or a network.
            npmDeps = nodeModules;
            ORDERFLOW_NODE_MODULES = "${nodeModules}/node_modules";
            ORDERFLOW_LINKER = "zigbuild";
          };

          formatter = pkgs.nixfmt;
        };

      bySystem = nixpkgs.lib.genAttrs systems perSystem;
      pick = output: nixpkgs.lib.mapAttrs (_: outputs: outputs.${output}) bySystem;
    in
    {
      packages = pick "packages";
      apps = pick "apps";
      checks = pick "checks";
      devShells = pick "devShells";
      formatter = pick "formatter";
    };
}
