# STUB standing in for github:oxalica/rust-overlay in offline structure checks (.ci/nix-checks
# passes it with --override-input). NOT rust-overlay: `overlays.default` adds a `rust-bin` with
# only `fromRustupToolchainFile`, which reads the real rust-toolchain.toml (channel, profile,
# components) and returns a trivial derivation whose `override` takes rust-overlay's arguments
# (extensions, targets, targetExtensions: anything else is an error) and rejects unknown component
# and target names, as rust-overlay does. No toolchain is fetched.
{
  description = "STUB rust-overlay for offline structure checks (not rust-overlay)";

  outputs =
    { self }:
    {
      overlays.default =
        final: prev:
        let
          knownComponents = [
            "cargo"
            "clippy"
            "llvm-tools-preview"
            "miri"
            "rust-analyzer"
            "rust-docs"
            "rust-src"
            "rust-std"
            "rustc"
            "rustc-dev"
            "rustfmt"
          ];
          knownTargets = [
            "aarch64-apple-darwin"
            "aarch64-unknown-linux-gnu"
            "aarch64-unknown-linux-musl"
            "wasm32-unknown-unknown"
            "x86_64-apple-darwin"
            "x86_64-unknown-linux-gnu"
            "x86_64-unknown-linux-musl"
          ];
          check =
            kind: known: names:
            let
              unknown = builtins.filter (n: !(builtins.elem n known)) names;
            in
            assert
              unknown == [ ]
              || throw "rust-overlay stub: unknown ${kind} ${builtins.concatStringsSep ", " unknown}";
            names;

          mkToolchain =
            {
              channel,
              profile,
              extensions,
              targets,
              targetExtensions,
            }@current:
            final.stdenv.mkDerivation {
              pname = "rust-${profile}";
              version = channel;
              extensions = check "component" knownComponents extensions;
              targets = check "target" knownTargets targets;
              targetExtensions = check "component" knownComponents targetExtensions;
            }
            // {
              # rust-overlay's toolchains are makeOverridable: what is not given is kept.
              override =
                {
                  extensions ? current.extensions,
                  targets ? current.targets,
                  targetExtensions ? current.targetExtensions,
                }:
                mkToolchain {
                  inherit
                    channel
                    profile
                    extensions
                    targets
                    targetExtensions
                    ;
                };
            };
        in
        {
          rust-bin = {
            fromRustupToolchainFile =
              path:
              let
                toolchain = (builtins.fromTOML (builtins.readFile path)).toolchain;
                profile = toolchain.profile or "default";
              in
              assert toolchain ? channel || throw "rust-overlay stub: ${toString path} has no channel";
              assert
                builtins.elem profile [
                  "minimal"
                  "default"
                  "complete"
                ]
                || throw "rust-overlay stub: unknown profile ${profile}";
              mkToolchain {
                inherit (toolchain) channel;
                inherit profile;
                extensions = toolchain.components or [ ];
                targets = toolchain.targets or [ ];
                targetExtensions = [ ];
              };
          };
        };
    };
}
