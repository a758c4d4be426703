#!/usr/bin/env bash
# Renders a dosepaint report in headless Chromium and fails if the page
# reports an error, an image is missing or broken, or an expected section is
# absent. Usage: scripts/check_report.sh out/report.html [screenshot.png]
set -euo pipefail
report=$(realpath "$1")
shot=${2:-}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "check_report: chromium is not installed" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$profile" --virtual-time-budget=5000)

# The DOM after scripts and image decoding ran: a small probe appended to the
# page marks every <img> whose decoding failed (naturalWidth 0).
probe=$(mktemp --suffix=.html)
trap 'rm -rf "$profile" "$probe"' EXIT
sed 's#</body>#<script>window.addEventListener("load",()=>{const bad=[...document.images].filter(i=>!i.complete||i.naturalWidth===0);document.body.setAttribute("data-images",document.images.length);document.body.setAttribute("data-broken",bad.length);});window.addEventListener("error",e=>document.body.setAttribute("data-error",String(e.message)));</script></body>#' "$report" > "$probe"
dom=$(timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$probe" 2>/dev/null)

images=$(grep -o 'data-images="[0-9]*"' <<<"$dom" | grep -o '[0-9]*' || true)
broken=$(grep -o 'data-broken="[0-9]*"' <<<"$dom" | grep -o '[0-9]*' || true)
if grep -q 'data-error=' <<<"$dom"; then
  echo "check_report: the page reported an error: $(grep -o 'data-error="[^"]*"' <<<"$dom")" >&2; exit 1
fi
[ -n "$images" ] || { echo "check_report: the page did not finish loading" >&2; exit 1; }
[ "$images" -ge 6 ] || { echo "check_report: only $images images (expected dose washes and fluence maps)" >&2; exit 1; }
[ "$broken" = 0 ] || { echo "check_report: $broken of $images images failed to decode" >&2; exit 1; }
for section in "Dose-painting quality" "Clinical goals" "Dose-volume histograms" "Dose distributions" "Fluence maps" "Stage timings"; do
  grep -q "$section" <<<"$dom" || { echo "check_report: section \"$section\" is missing" >&2; exit 1; }
done
[ "$(grep -c '<svg' <<<"$dom")" -ge 1 ] || { echo "check_report: no DVH chart" >&2; exit 1; }
if [ -n "$shot" ]; then
  timeout 120 "$browser" "${flags[@]}" --window-size=1400,2400 --screenshot="$shot" "file://$report" >/dev/null 2>&1
fi
echo "check_report: $images images decoded, all sections present"
