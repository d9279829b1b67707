#!/usr/bin/env bash
# Renders a report workbook to PNG, for a human to look at what users get:
# LibreOffice headless prints it to PDF, pdftoppm turns one page into a PNG,
# trimmed to the printed area. Installs what it needs (idempotently).
#
#   tests/render_report.sh [--page N] [WORKBOOK.xlsx] OUT.png
#
# Without a workbook it renders the sample hour that
# `test_report_book --sample` writes, from $NS_BUILD_DIR (default build/;
# built if missing). Each sheet prints as its own page: page 1 is
# "Hourly Report", page 2 "Analyses".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

page=1
if [[ ${1:-} == --page ]]; then
    [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage
    page=$2
    shift 2
fi
case $# in
1) workbook="" out=$1 ;;
2) workbook=$1 out=$2 ;;
*) usage ;;
esac
[[ $out == *.png ]] || ns_die "the output must be a .png file: $out"

# fonts-symbola: emoji in job and project names show as such.
ns_install_packages libreoffice-calc-nogui poppler-utils python3-pil \
    fonts-symbola

work=$(mktemp -d -t nightshift-render.XXXXXX)
trap 'rm -rf -- "$work"' EXIT

if [[ -z $workbook ]]; then
    sample=$NS_BUILD_DIR/tests/test_report_book
    if [[ ! -x $sample ]]; then
        ns_note "building test_report_book in $NS_BUILD_DIR"
        ns_build -- --target test_report_book >&2
    fi
    workbook=$work/report.xlsx
    "$sample" --sample "$workbook"
fi
[[ -f $workbook ]] || ns_die "no such workbook: $workbook"

# A copy under a fixed name (LibreOffice names the PDF after it), and a
# private LibreOffice profile: no clash with a running instance or another
# render, and nothing left in $HOME.
[[ $workbook == "$work/report.xlsx" ]] || cp -- "$workbook" "$work/report.xlsx"
# Poppler draws no colour (bitmap) emoji: LibreOffice is kept to Symbola's
# outlines.
cat >"$work/fonts.conf" <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont><rejectfont><glob>*ColorEmoji*</glob></rejectfont></selectfont>
</fontconfig>
EOF
FONTCONFIG_FILE=$work/fonts.conf timeout 180 soffice --headless --norestore \
    "-env:UserInstallation=file://$work/profile" \
    --convert-to pdf --outdir "$work" "$work/report.xlsx" >"$work/soffice.log" 2>&1 ||
    { ns_tail_log "$work/soffice.log"; ns_die "LibreOffice could not convert $workbook"; }
[[ -s $work/report.pdf ]] || { ns_tail_log "$work/soffice.log"; ns_die "no PDF from LibreOffice"; }

pages=$(pdfinfo "$work/report.pdf" | awk '/^Pages:/ {print $2}')
((page <= pages)) || ns_die "page $page asked for, the PDF has $pages"
pdftoppm -png -r 150 -f "$page" -l "$page" -singlefile "$work/report.pdf" "$work/page"

# Trim the empty paper around what was printed, keeping a margin.
/usr/bin/python3 - "$work/page.png" "$out" <<'EOF'
import sys
from PIL import Image, ImageChops

page = Image.open(sys.argv[1]).convert("RGB")
ink = ImageChops.difference(page, Image.new("RGB", page.size, "white"))
box = ink.getbbox()
if box:
    margin = 24
    box = (max(box[0] - margin, 0), max(box[1] - margin, 0),
           min(box[2] + margin, page.width), min(box[3] + margin, page.height))
    page = page.crop(box)
page.save(sys.argv[2])
EOF
ns_note "page $page of $pages: $out"
