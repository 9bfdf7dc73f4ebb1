# STUB standing in for github:NixOS/nixpkgs in offline structure checks (.ci/nix-checks passes it
# with --override-input). NOT nixpkgs: a few trivial derivations with nixpkgs' names, enough for
# `nix flake show` and `nix flake check --no-build` to evaluate the real flake.nix. See default.nix.
{
  description = "STUB nixpkgs for offline structure checks (not nixpkgs)";

  outputs =
    { self }:
    {
      lib = import ./lib.nix;
      # `import nixpkgs { ... }` reads ./default.nix through the flake's outPath.
      legacyPackages = self.lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ] (system: import ./default.nix { inherit system; });
    };
}
