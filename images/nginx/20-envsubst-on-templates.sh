#!/bin/sh
# Render nginx config templates from environment variables, as the official image does:
# every /etc/nginx/templates/**/NAME.template becomes /etc/nginx/conf.d/**/NAME with
# ${VAR} replaced by the value of each environment variable that is set (other $words,
# such as nginx's own $host, are left alone). Directories and the suffix can be changed
# with NGINX_ENVSUBST_TEMPLATE_DIR, NGINX_ENVSUBST_TEMPLATE_SUFFIX and
# NGINX_ENVSUBST_OUTPUT_DIR; NGINX_ENVSUBST_FILTER limits which variables are replaced
# (an awk regular expression matched against the names).
set -e

me="$(basename "$0")"
say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: $*"
}

src="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
dst="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

[ -d "$src" ] || exit 0
if [ ! -w "$dst" ]; then
    say "ERROR: $src exists, but $dst is not writable"
    exit 0
fi

# "${A} ${B} ..." for the variables that are set, so envsubst touches only those.
vars="$(awk -v f="$filter" 'END { for (n in ENVIRON) if (n ~ f) printf "${%s} ", n }' </dev/null)"

find "$src" -follow -type f -name "*$suffix" | sort | while read -r tpl; do
    rel="${tpl#"$src"/}"
    out="$dst/${rel%"$suffix"}"
    mkdir -p "$(dirname "$out")"
    say "Running envsubst on $tpl to $out"
    envsubst "$vars" <"$tpl" >"$out"
done
