#!/usr/bin/python3
"""Reads back the workbooks tests/unit/test_report_book.c wrote (with
openpyxl, Debian's python3-openpyxl) and checks what a user would see:
sheet names, header style, frozen header, autofilter, cell types, number
formats, values, totals, and that hostile text stays text.

    check_report_book.py DIR    DIR holds normal.xlsx, empty.xlsx,
                                hostile.xlsx and runs_only.xlsx
Exits 0 when everything holds, 1 (listing every failure) otherwise."""
import sys
import zipfile
from datetime import datetime

try:
    import openpyxl
except ImportError:
    sys.exit("check_report_book.py: python3-openpyxl is not installed "
             "(apt-get install python3-openpyxl)")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def near(got, want, what):
    check(isinstance(got, (int, float)) and abs(got - want) < 1e-9,
          f"{what}: got {got!r}, want {want!r}")


RUN_HEADER = ["Job", "Run ID", "Started (Europe/Berlin)", "Status",
              "Duration (s)", "Items Processed", "Items Failed",
              "Success Rate"]
ANALYSES_HEADER = ["Project", "Created (Europe/Berlin)", "Model", "Tokens",
                   "Content"]

# (job, run id, local start, status, duration, processed, failed, rate)
NORMAL_RUNS = [
    ("batch-analyzer", 101, datetime(2026, 11, 30, 5, 0, 5), "succeeded",
     12.5, 40, 0, 1.0),
    ("stopwords-refresh", 102, datetime(2026, 11, 30, 5, 10), "failed",
     63.25, 10, 3, 0.7),
    ("log-analyzer", 103, datetime(2026, 11, 30, 5, 45), "running",
     None, 2, 0, 1.0),
    ("reports-generator", 104, datetime(2026, 11, 30, 5, 59, 59), "running",
     None, 0, 0, None),
    ("webhook", 1234567, datetime(2026, 11, 30, 5, 30), "succeeded",
     3725.0, 12345, 0, 1.0),
]

NORMAL_ANALYSES = [
    ("Apollo", datetime(2026, 11, 30, 5, 20), "sonar-pro", 1532,
     "Assessment: on track.\nRisks: the vendor API changes in January.\n"
     "Next steps: pin the client version.\u2026"),
    ("Zeus \U0001F680", datetime(2026, 11, 30, 5, 50), "gpt-4o-mini", 980,
     "Short answer."),
]


def check_header(ws, names, last_col):
    where = ws.title
    eq([c.value for c in ws[1]], names, f"{where} header")
    for cell in ws[1]:
        at = f"{where}!{cell.coordinate}"
        check(cell.font.b, f"{at} is not bold")
        eq(cell.font.color.rgb if cell.font.color else None, "FFFFFFFF",
           f"{at} font colour")
        eq(cell.fill.fill_type, "solid", f"{at} fill type")
        eq(cell.fill.fgColor.rgb, "FF4472C4", f"{at} fill colour")
        eq(cell.data_type, "s", f"{at} type")
    eq(ws.freeze_panes, "A2", f"{where} frozen panes")
    eq(ws.auto_filter.ref, f"A1:{last_col}{ws.max_row - 1}",
       f"{where} autofilter")


def check_width(ws, col, text_width, cap=60):
    """Fitted: room for the widest cell (+2), within the caps."""
    want = min(max(text_width + 2, 8), cap)
    got = ws.column_dimensions[col].width
    check(got is not None and want <= got < want + 1,
          f"{ws.title} column {col} width {got!r}, want about {want}")


def check_runs(ws, runs):
    check_header(ws, RUN_HEADER, "H")
    for i, (job, run_id, started, status, duration, processed, failed,
            rate) in enumerate(runs, start=2):
        row = ws[i]
        at = f"Hourly Report row {i}"
        eq(row[0].value, job, f"{at} job")
        eq(row[0].data_type, "s", f"{at} job type")
        eq(row[1].value, run_id, f"{at} run id")
        eq(row[1].data_type, "n", f"{at} run id type")
        eq(row[2].value, started, f"{at} started")
        check(row[2].is_date, f"{at} started is not a date")
        eq(row[2].number_format, "yyyy-mm-dd hh:mm:ss", f"{at} date format")
        eq(row[3].value, status, f"{at} status")
        eq(row[4].value, duration, f"{at} duration")
        eq(row[4].number_format, "#,##0.0", f"{at} duration format")
        eq(row[5].value, processed, f"{at} processed")
        eq(row[5].data_type, "n", f"{at} processed type")
        eq(row[6].value, failed, f"{at} failed")
        if rate is None:
            eq(row[7].value, None, f"{at} rate")
        else:
            near(row[7].value, rate, f"{at} rate")
        check("%" in row[7].number_format, f"{at} rate format "
              f"{row[7].number_format!r} is not a percentage")
    total = ws[len(runs) + 2]
    at = f"Hourly Report totals row {len(runs) + 2}"
    n = len(runs)
    eq(total[0].value, f"Total ({n} run{'' if n == 1 else 's'})", at)
    all_processed = sum(r[5] for r in runs)
    all_failed = sum(r[6] for r in runs)
    eq(total[5].value, all_processed, f"{at} processed")
    eq(total[6].value, all_failed, f"{at} failed")
    near(total[7].value, (all_processed - all_failed) / all_processed,
         f"{at} rate")
    check("%" in total[7].number_format, f"{at} rate format")
    for cell in (total[0], total[5], total[6], total[7]):
        check(cell.font.b, f"{at} {cell.coordinate} is not bold")
    eq(ws.max_row, len(runs) + 2, "Hourly Report rows")


def check_normal(path):
    wb = openpyxl.load_workbook(path)
    eq(wb.sheetnames, ["Hourly Report", "Analyses"], "normal sheets")
    ws = wb["Hourly Report"]
    check_runs(ws, NORMAL_RUNS)
    eq(ws["D3"].fill.fgColor.rgb, "FFFFC7CE", "failed run's status fill")
    check_width(ws, "A", len("stopwords-refresh"))
    check_width(ws, "C", len("Started (Europe/Berlin)") + 3)
    check_width(ws, "F", len("Items Processed") + 3)

    an = wb["Analyses"]
    check_header(an, ANALYSES_HEADER, "E")
    for i, (project, created, model, tokens, content) in enumerate(
            NORMAL_ANALYSES, start=2):
        row = an[i]
        at = f"Analyses row {i}"
        eq(row[0].value, project, f"{at} project")
        eq(row[1].value, created, f"{at} created")
        check(row[1].is_date, f"{at} created is not a date")
        eq(row[2].value, model, f"{at} model")
        eq(row[3].value, tokens, f"{at} tokens")
        eq(row[3].data_type, "n", f"{at} tokens type")
        eq(row[4].value, content, f"{at} content")
        check(row[4].alignment.wrap_text, f"{at} content does not wrap")
    total = an[len(NORMAL_ANALYSES) + 2]
    eq(total[0].value, "Total (2 analyses)", "Analyses totals label")
    eq(total[3].value, 2512, "Analyses totals tokens")
    check(total[3].font.b, "Analyses totals are not bold")
    check_width(an, "E", len("Risks: the vendor API changes in January."),
                cap=80)


def check_empty(path):
    wb = openpyxl.load_workbook(path)
    eq(wb.sheetnames, ["No activity"], "empty hour sheets")
    ws = wb["No activity"]
    eq(ws["A1"].value,
       "No activity from 2026-11-30 23:00 to 2026-12-01 00:00 "
       "(Europe/Berlin, UTC+01:00): no job runs and no analyses.",
       "empty hour sentence")
    eq(ws.max_row, 1, "empty hour rows")


HOSTILE_JOBS = [
    '=HYPERLINK("http://x","y")', "-2", "=1+1", "ctl[31mredend",
    "bad\ufffd\ufffd\ufffd(utf8", "deploy \U0001F680\u2705", "_x0041_",
    "=cmd|' /C calc'!A0",
]
HOSTILE_STATUSES = [
    "+1", "@SUM(A1)", "=2+3", "a b c", "x",
    "\u0645\u0634\u0631\u0648\u0639 \u05e2\u05d1\u05e8\u05d9\u05ea", None,
    "succeeded",
]
HOSTILE_ANALYSES = [
    ("=1+2", "@model", '=HYPERLINK("http://x","y")\nsecond'),
    ("+cmd", "-m", "\t-tab first\n[2Jcleared"),
    (None, None, None),
]


def check_text(cell, want, at):
    eq(cell.value, want, at)
    if want is not None:
        eq(cell.data_type, "s", f"{at} type")


def check_hostile(path):
    wb = openpyxl.load_workbook(path)
    eq(wb.sheetnames, ["Hourly Report", "Analyses"], "hostile sheets")
    ws = wb["Hourly Report"]
    for i, (job, status) in enumerate(zip(HOSTILE_JOBS, HOSTILE_STATUSES),
                                      start=2):
        check_text(ws.cell(i, 1), job, f"hostile job row {i}")
        check_text(ws.cell(i, 4), status, f"hostile status row {i}")
    an = wb["Analyses"]
    for i, (project, model, content) in enumerate(HOSTILE_ANALYSES, start=2):
        check_text(an.cell(i, 1), project, f"hostile project row {i}")
        check_text(an.cell(i, 3), model, f"hostile model row {i}")
        check_text(an.cell(i, 5), content, f"hostile content row {i}")
    for sheet in wb.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                check(cell.data_type != "f",
                      f"{sheet.title}!{cell.coordinate} is a formula")
    # Below openpyxl: no formula element, no formula's string result; and
    # "_x0041_", which Excel would show as "A", is escaped (openpyxl only
    # undoes that escape, so it cannot tell).
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name).decode("utf-8") for name in z.namelist()
                 if name.endswith(".xml")}
    strings = "".join(xml for name, xml in parts.items()
                      if name.lower().endswith("sharedstrings.xml"))
    check("<t>_x005F_x0041_</t>" in strings,
          'shared string "_x0041_" is not escaped')
    for name, xml in parts.items():
        if name.startswith("xl/worksheets/"):
            check("<f>" not in xml and "<f " not in xml and
                  't="str"' not in xml, f"{name} holds a formula")


def check_runs_only(path):
    wb = openpyxl.load_workbook(path)
    eq(wb.sheetnames, ["Hourly Report", "Analyses"], "runs-only sheets")
    runs = [NORMAL_RUNS[0][:2] + (datetime(2026, 11, 30, 4, 0, 5),) +
            NORMAL_RUNS[0][3:]]
    # The hour is in UTC here.
    header = list(RUN_HEADER)
    header[2] = "Started (UTC)"
    ws = wb["Hourly Report"]
    eq([c.value for c in ws[1]], header, "runs-only header")
    eq(ws.auto_filter.ref, "A1:H2", "runs-only autofilter")
    eq(ws["C2"].value, runs[0][2], "runs-only started")
    eq(ws["A3"].value, "Total (1 run)", "runs-only totals")
    an = wb["Analyses"]
    eq(an.max_row, 2, "runs-only analyses rows")
    eq(an.auto_filter.ref, "A1:E1", "runs-only analyses autofilter")
    eq(an["A2"].value, "Total (0 analyses)", "runs-only analyses totals")
    eq(an["D2"].value, 0, "runs-only analyses tokens")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    check_normal(f"{folder}/normal.xlsx")
    check_empty(f"{folder}/empty.xlsx")
    check_hostile(f"{folder}/hostile.xlsx")
    check_runs_only(f"{folder}/runs_only.xlsx")
    for f in failures:
        print(f"check_report_book: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print("check_report_book: all workbooks as expected")


if __name__ == "__main__":
    main()
