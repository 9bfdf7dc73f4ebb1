# STUB of nixpkgs' `lib`, for offline structure checks only (.ci/nix-checks). It holds exactly the
# functions the repository's flake.nix and nix/*.nix use, written against builtins with nixpkgs'
# names and argument orders; any other name fails as a missing attribute. lib.fileset is a small
# real implementation (paths must exist, toSource copies the selected files), so a wrong source
# path fails here as it would with nixpkgs.
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elemAt
    filter
    isAttrs
    isList
    isPath
    isString
    length
    listToAttrs
    pathExists
    replaceStrings
    split
    stringLength
    substring
    ;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  regexSpecials = [
    "\\"
    "["
    "]"
    "{"
    "}"
    "("
    ")"
    "."
    "*"
    "+"
    "?"
    "^"
    "$"
    "|"
  ];
  escapeRegex = replaceStrings regexSpecials (map (c: "\\" + c) regexSpecials);

  # A fileset here is { _stubFileset = true; paths = [ <absolute path string> ... ]; }.
  toFileset =
    value:
    if isAttrs value && value ? _stubFileset then
      value
    else if isPath value then
      if pathExists value then
        {
          _stubFileset = true;
          paths = [ (toString value) ];
        }
      else
        throw "lib.fileset (stub): ${toString value} does not exist (use lib.fileset.maybeMissing)"
    else
      throw "lib.fileset (stub): expected a path or a file set";
in
rec {
  inherit
    attrNames
    concatStringsSep
    hasPrefix
    replaceStrings
    ;

  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );
  mapAttrs = builtins.mapAttrs;
  filterAttrs =
    pred: set:
    listToAttrs (
      concatMap (
        n:
        if pred n set.${n} then
          [
            {
              name = n;
              value = set.${n};
            }
          ]
        else
          [ ]
      ) (attrNames set)
    );
  optionalAttrs = cond: set: if cond then set else { };
  optionals = cond: list: if cond then list else [ ];
  concatMapStringsSep =
    sep: f: list:
    concatStringsSep sep (map f list);
  last =
    list:
    assert list != [ ] || throw "lib.last (stub): empty list";
    elemAt list (length list - 1);
  splitString = sep: s: filter isString (split (escapeRegex sep) s);
  importJSON = path: builtins.fromJSON (builtins.readFile path);
  makeBinPath = pkgs: concatStringsSep ":" (map (p: "${p}/bin") pkgs);
  isDerivation = value: isAttrs value && (value.type or null) == "derivation";

  fetchers.proxyImpureEnvVars = [
    "http_proxy"
    "https_proxy"
    "ftp_proxy"
    "all_proxy"
    "no_proxy"
    "HTTP_PROXY"
    "HTTPS_PROXY"
    "FTP_PROXY"
    "ALL_PROXY"
    "NO_PROXY"
  ];

  fileset = {
    unions =
      list:
      assert isList list || throw "lib.fileset.unions (stub): expected a list";
      {
        _stubFileset = true;
        paths = concatMap (v: (toFileset v).paths) list;
      };
    maybeMissing =
      path:
      {
        _stubFileset = true;
        paths = if pathExists path then [ (toString path) ] else [ ];
      };
    toSource =
      { root, fileset }:
      let
        rootStr = toString root;
        selected = (toFileset fileset).paths;
        inside = p: p == rootStr || hasPrefix (rootStr + "/") p;
        keep =
          path: type:
          builtins.any (
            f: path == f || hasPrefix (f + "/") path || (type == "directory" && hasPrefix (path + "/") f)
          ) selected;
      in
      assert
        builtins.all inside selected
        || throw "lib.fileset.toSource (stub): a file set path lies outside root ${rootStr}";
      builtins.path {
        name = "source";
        path = root;
        filter = keep;
      };
  };
}
