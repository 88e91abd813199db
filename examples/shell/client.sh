#!/usr/bin/env bash
# Asks tokend for the access token, then calls the Acoustic XML API with it.
#
#   ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI ./client.sh
#
# TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
# TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
set -euo pipefail

tokend_url=${TOKEND_URL:-http://127.0.0.1:8439}
api_url=${ACOUSTIC_API_URL:?set ACOUSTIC_API_URL to the XML API URL}
attempts=${TOKEND_ATTEMPTS:-5}
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT

fetch_token() {
    local attempt status wait
    for ((attempt = 1; attempt <= attempts; attempt++)); do
        token=$(curl --silent --show-error --max-time 10 \
            --header 'Tokend-Request: 1' --header 'Accept: text/plain' \
            --dump-header "$headers" --write-out '\n%{http_code}' \
            "$tokend_url/token") || return 1
        status=${token##*$'\n'}
        token=${token%$'\n'*}
        [[ $status == 200 ]] && return 0
        if [[ $status != 503 ]]; then
            echo "tokend answered HTTP $status" >&2
            return 1
        fi

        # Retry-After is whole seconds; never wait longer than 30.
        wait=$(sed -n 's/^retry-after: *\([0-9]*\).*/\1/ip' "$headers")
        wait=$((${wait:-1} > 30 ? 30 : ${wait:-1}))
        if ((attempt < attempts)); then
            echo "tokend has no token yet (HTTP 503); retrying in ${wait}s" >&2
            sleep "$wait"
        fi
    done
    echo "tokend had no token after $attempts attempts" >&2
    return 1
}

fetch_token || exit 1

# The header goes through stdin: a token on curl's command line would be
# visible to every local user in the process list.
body='<Envelope><Body><GetLists><VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE></GetLists></Body></Envelope>'
answer=$(printf 'Authorization: Bearer %s\n' "$token" |
    curl --silent --show-error --fail --max-time 30 \
        --header @- --header 'Content-Type: text/xml;charset=UTF-8' \
        --data-binary "$body" "$api_url") || {
    echo "the XML API call failed" >&2
    exit 1
}

if grep -qi '<SUCCESS>true</SUCCESS>' <<<"$answer"; then
    echo "GetLists SUCCESS=true"
else
    fault=$(sed -n 's:.*<FaultString>\(.*\)</FaultString>.*:\1:p' <<<"$answer")
    echo "GetLists SUCCESS=false: ${fault:-no FaultString}"
    exit 1
fi
