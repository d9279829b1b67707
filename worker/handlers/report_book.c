/* report_book.c: the hourly report workbook (seed 001). Every text cell is
 * cleaned (valid UTF-8, no control characters, bounded) and written with
 * worksheet_write_string: a shared-string cell that Excel shows as text even
 * when it begins with "=", "+", "-" or "@", so user data is never a formula. */
#include "report_book.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include "ns/tz.h"
#include "report_text.h"

#define NAME_MAX_CHARS 200 /* job, status, project, model */
#define CONTENT_MAX_CHARS 500
#define CONTENT_MAX_LINES 3
#define WIDTH_MIN 8
#define WIDTH_MAX 60
#define CONTENT_WIDTH_MAX 80
#define MAX_COLS 8
#define ROW_HEIGHT 15.0 /* points, of one line of 11-point Calibri */

#define HEADER_BG 0x4472C4
#define HEADER_FG 0xFFFFFF
#define DATE_FORMAT "yyyy-mm-dd hh:mm:ss"
#define DATE_SHOWN_CHARS 19

/* A wall-clock time in the report's zone. */
typedef struct local_time {
    int64_t year;
    int month, day, hour, min, sec;
} local_time_t;

/* Excel's "Good", "Neutral" and "Bad" cell styles, by run status. */
static const struct status_style {
    const char *status;
    lxw_color_t font, fill;
} status_styles[] = {
    {"succeeded", 0x006100, 0xC6EFCE},  {"failed", 0x9C0006, 0xFFC7CE},
    {"running", 0x9C5700, 0xFFEB9C},    {"pending", 0x9C5700, 0xFFEB9C},
    {"finalizing", 0x9C5700, 0xFFEB9C},
};
#define N_STATUS_STYLES (sizeof(status_styles) / sizeof(status_styles[0]))

typedef struct book {
    lxw_workbook *wb;
    lxw_error failed; /* the first write error, LXW_NO_ERROR if none */
    int nomem;
    lxw_format *header, *text, *date, *seconds, *count, *percent, *wrap;
    lxw_format *total_text, *total_count, *total_percent;
    lxw_format *status[N_STATUS_STYLES];
    size_t width[MAX_COLS]; /* display width of the widest cell, per column */
} book_t;

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Whole seconds: a report has no use for milliseconds, and Excel would round
 * 12:00:59.7 up to 12:01:00 on display. */
static local_time_t to_local(const ns_tz_t *tz, int64_t ms)
{
    int64_t utc_s = floor_div(ms, 1000);
    int64_t local_s = utc_s + ns_tz_utc_offset(tz, utc_s);
    int64_t days = floor_div(local_s, 86400);
    int64_t secs = local_s - days * 86400;
    local_time_t t = {.hour = (int)(secs / 3600),
                      .min = (int)(secs % 3600 / 60),
                      .sec = (int)(secs % 60)};
    ns_tz_civil_from_days(days, &t.year, &t.month, &t.day);
    return t;
}

/* The widest line, in characters. */
static size_t display_width(const char *s)
{
    size_t rows;
    return ns_report_text_measure(s, WIDTH_MAX, &rows);
}

/* ---- cells ----------------------------------------------------------- */

static void note(book_t *bk, lxw_error rc)
{
    if (rc != LXW_NO_ERROR && bk->failed == LXW_NO_ERROR)
        bk->failed = rc;
}

static void note_width(book_t *bk, lxw_col_t col, size_t width)
{
    if (col < MAX_COLS && width > bk->width[col])
        bk->width[col] = width;
}

/* Cleans and writes one text cell, always as a string. Returns the lines
 * it takes in a column of the widest width, CONTENT_WIDTH_MAX. */
static size_t put_text(book_t *bk, lxw_worksheet *ws, lxw_row_t row,
                       lxw_col_t col, const char *s, size_t max_chars,
                       size_t max_lines, lxw_format *fmt)
{
    char *text = ns_report_text_clean(s, max_chars, max_lines);
    char *escaped = text ? ns_report_text_escape(text) : NULL;
    if (escaped == NULL) {
        free(text);
        bk->nomem = 1;
        return 1;
    }
    note(bk, worksheet_write_string(ws, row, col, escaped, fmt));
    size_t rows;
    note_width(bk, col,
               ns_report_text_measure(text, CONTENT_WIDTH_MAX - 2, &rows));
    free(escaped);
    free(text);
    return rows;
}

/* Width of a number as its format shows it ("#,##0" adds separators). */
static size_t number_width(double value, int decimals, int grouped)
{
    char digits[64];
    int n = snprintf(digits, sizeof(digits), "%.*f", decimals, value);
    if (n < 0)
        return 0;
    size_t integral = (size_t)n - (decimals > 0 ? (size_t)decimals + 1 : 0);
    return (size_t)n + (grouped && integral > 0 ? (integral - 1) / 3 : 0);
}

static void put_count(book_t *bk, lxw_worksheet *ws, lxw_row_t row,
                      lxw_col_t col, int64_t value, lxw_format *fmt)
{
    note(bk, worksheet_write_number(ws, row, col, (double)value, fmt));
    note_width(bk, col, number_width((double)value, 0, fmt != bk->text));
}

static void put_seconds(book_t *bk, lxw_worksheet *ws, lxw_row_t row,
                        lxw_col_t col, double seconds)
{
    if (seconds < 0) {
        note(bk, worksheet_write_blank(ws, row, col, bk->seconds));
        return;
    }
    note(bk, worksheet_write_number(ws, row, col, seconds, bk->seconds));
    note_width(bk, col, number_width(seconds, 1, 1));
}

/* A share 0..1 shown as a percentage; blank when nothing was processed. */
static void put_rate(book_t *bk, lxw_worksheet *ws, lxw_row_t row,
                     lxw_col_t col, int64_t ok, int64_t processed,
                     lxw_format *fmt)
{
    if (processed <= 0) {
        note(bk, worksheet_write_blank(ws, row, col, fmt));
        return;
    }
    note(bk, worksheet_write_number(ws, row, col,
                                    (double)ok / (double)processed, fmt));
    note_width(bk, col, strlen("100.00%"));
}

/* A real Excel datetime in the report's zone (blank outside Excel's years). */
static void put_time(book_t *bk, lxw_worksheet *ws, lxw_row_t row,
                     lxw_col_t col, const ns_tz_t *tz, int64_t ms)
{
    local_time_t t = to_local(tz, ms);
    if (t.year < 1900 || t.year > 9999) {
        note(bk, worksheet_write_blank(ws, row, col, bk->date));
        return;
    }
    lxw_datetime dt = {(int)t.year, t.month, t.day, t.hour, t.min, t.sec};
    note(bk, worksheet_write_datetime(ws, row, col, &dt, bk->date));
    note_width(bk, col, DATE_SHOWN_CHARS);
}

static void put_header(book_t *bk, lxw_worksheet *ws, const char *const *names,
                       size_t n)
{
    for (size_t col = 0; col < n; col++) {
        note(bk, worksheet_write_string(ws, 0, (lxw_col_t)col, names[col],
                                        bk->header));
        /* Bold text and the autofilter's drop-down button need room. */
        note_width(bk, (lxw_col_t)col, display_width(names[col]) + 3);
    }
    note(bk, worksheet_set_row(ws, 0, 20, NULL));
    worksheet_freeze_panes(ws, 1, 0);
}

static void fit_columns(book_t *bk, lxw_worksheet *ws, size_t n,
                        size_t last_max)
{
    for (size_t col = 0; col < n && col < MAX_COLS; col++) {
        size_t max = col + 1 == n ? last_max : WIDTH_MAX;
        size_t w = bk->width[col] + 2;
        w = w < WIDTH_MIN ? WIDTH_MIN : w > max ? max : w;
        note(bk, worksheet_set_column(ws, (lxw_col_t)col, (lxw_col_t)col,
                                      (double)w, NULL));
        bk->width[col] = 0;
    }
}

static void page_setup(book_t *bk, lxw_worksheet *ws, const char *title)
{
    worksheet_set_landscape(ws);
    worksheet_fit_to_pages(ws, 1, 0);
    note(bk, worksheet_repeat_rows(ws, 0, 0));
    note(bk, worksheet_set_header(ws, title));
}

/* ---- sheets ---------------------------------------------------------- */

static lxw_format *status_format(book_t *bk, const char *status)
{
    for (size_t i = 0; status != NULL && i < N_STATUS_STYLES; i++)
        if (strcmp(status, status_styles[i].status) == 0)
            return bk->status[i];
    return bk->text;
}

static void runs_sheet(book_t *bk, const ns_tz_t *tz, const char *tz_name,
                       const char *page_title, const ns_report_run_t *runs,
                       size_t n)
{
    lxw_worksheet *ws = workbook_add_worksheet(bk->wb, "Hourly Report");
    if (ws == NULL) {
        bk->nomem = 1;
        return;
    }
    char started[96];
    snprintf(started, sizeof(started), "Started (%s)", tz_name);
    const char *names[] = {"Job",          "Run ID",       started,
                           "Status",       "Duration (s)", "Items Processed",
                           "Items Failed", "Success Rate"};
    put_header(bk, ws, names, 8);
    int64_t all_processed = 0, all_failed = 0;
    for (size_t i = 0; i < n; i++) {
        const ns_report_run_t *r = &runs[i];
        lxw_row_t row = (lxw_row_t)(i + 1);
        int64_t processed = r->items_done + r->items_failed;
        put_text(bk, ws, row, 0, r->job, NAME_MAX_CHARS, 1, bk->text);
        put_count(bk, ws, row, 1, r->run_id, bk->text);
        put_time(bk, ws, row, 2, tz, r->started_ms);
        put_text(bk, ws, row, 3, r->status, NAME_MAX_CHARS, 1,
                 status_format(bk, r->status));
        put_seconds(bk, ws, row, 4, r->duration_s);
        put_count(bk, ws, row, 5, processed, bk->count);
        put_count(bk, ws, row, 6, r->items_failed, bk->count);
        put_rate(bk, ws, row, 7, r->items_done, processed, bk->percent);
        all_processed += processed;
        all_failed += r->items_failed;
    }
    /* The filter covers the runs; the totals row stays below it. */
    note(bk, worksheet_autofilter(ws, 0, 0, (lxw_row_t)n, 7));
    lxw_row_t total = (lxw_row_t)(n + 1);
    char label[64];
    snprintf(label, sizeof(label), "Total (%zu run%s)", n, n == 1 ? "" : "s");
    put_text(bk, ws, total, 0, label, NAME_MAX_CHARS, 1, bk->total_text);
    for (lxw_col_t col = 1; col <= 4; col++)
        note(bk, worksheet_write_blank(ws, total, col, bk->total_text));
    put_count(bk, ws, total, 5, all_processed, bk->total_count);
    put_count(bk, ws, total, 6, all_failed, bk->total_count);
    put_rate(bk, ws, total, 7, all_processed - all_failed, all_processed,
             bk->total_percent);
    fit_columns(bk, ws, 8, WIDTH_MAX);
    page_setup(bk, ws, page_title);
}

static void analyses_sheet(book_t *bk, const ns_tz_t *tz, const char *tz_name,
                           const char *page_title,
                           const ns_report_analysis_t *an, size_t n)
{
    lxw_worksheet *ws = workbook_add_worksheet(bk->wb, "Analyses");
    if (ws == NULL) {
        bk->nomem = 1;
        return;
    }
    char created[96];
    snprintf(created, sizeof(created), "Created (%s)", tz_name);
    const char *names[] = {"Project", created, "Model", "Tokens", "Content"};
    put_header(bk, ws, names, 5);
    int64_t all_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        lxw_row_t row = (lxw_row_t)(i + 1);
        put_text(bk, ws, row, 0, an[i].project, NAME_MAX_CHARS, 1, bk->text);
        put_time(bk, ws, row, 1, tz, an[i].created_ms);
        put_text(bk, ws, row, 2, an[i].model, NAME_MAX_CHARS, 1, bk->text);
        put_count(bk, ws, row, 3, an[i].tokens, bk->count);
        size_t rows = put_text(bk, ws, row, 4, an[i].content, CONTENT_MAX_CHARS,
                               CONTENT_MAX_LINES, bk->wrap);
        /* LibreOffice does not grow a row for wrapped text by itself. */
        if (rows > 1)
            note(bk,
                 worksheet_set_row(ws, row, ROW_HEIGHT * (double)rows, NULL));
        all_tokens += an[i].tokens;
    }
    note(bk, worksheet_autofilter(ws, 0, 0, (lxw_row_t)n, 4));
    lxw_row_t total = (lxw_row_t)(n + 1);
    char label[64];
    snprintf(label, sizeof(label), "Total (%zu analys%s)", n,
             n == 1 ? "is" : "es");
    put_text(bk, ws, total, 0, label, NAME_MAX_CHARS, 1, bk->total_text);
    note(bk, worksheet_write_blank(ws, total, 1, bk->total_text));
    note(bk, worksheet_write_blank(ws, total, 2, bk->total_text));
    put_count(bk, ws, total, 3, all_tokens, bk->total_count);
    note(bk, worksheet_write_blank(ws, total, 4, bk->total_text));
    fit_columns(bk, ws, 5, CONTENT_WIDTH_MAX);
    page_setup(bk, ws, page_title);
}

static void empty_sheet(book_t *bk, const char *span, const char *page_title)
{
    lxw_worksheet *ws = workbook_add_worksheet(bk->wb, "No activity");
    if (ws == NULL) {
        bk->nomem = 1;
        return;
    }
    char sentence[256];
    snprintf(sentence, sizeof(sentence),
             "No activity %s: no job runs and no analyses.", span);
    put_text(bk, ws, 0, 0, sentence, sizeof(sentence), 1, NULL);
    size_t w = bk->width[0] + 4;
    note(bk, worksheet_set_column(ws, 0, 0, (double)w, NULL));
    page_setup(bk, ws, page_title);
}

/* ---- the workbook ---------------------------------------------------- */

static lxw_format *new_format(book_t *bk, const char *num_format, int bold)
{
    lxw_format *f = workbook_add_format(bk->wb);
    if (f == NULL) {
        bk->nomem = 1;
        return NULL;
    }
    if (num_format != NULL)
        format_set_num_format(f, num_format);
    /* Rows grow for wrapped content; the other cells stay beside its top. */
    format_set_align(f, LXW_ALIGN_VERTICAL_TOP);
    if (bold) {
        format_set_bold(f);
        format_set_top(f, LXW_BORDER_THIN);
    }
    return f;
}

static void add_formats(book_t *bk)
{
    bk->header = new_format(bk, NULL, 0);
    if (bk->header != NULL) {
        format_set_bold(bk->header);
        format_set_font_color(bk->header, HEADER_FG);
        format_set_bg_color(bk->header, HEADER_BG);
        format_set_pattern(bk->header, LXW_PATTERN_SOLID);
        format_set_align(bk->header, LXW_ALIGN_CENTER);
        format_set_align(bk->header, LXW_ALIGN_VERTICAL_CENTER);
    }
    bk->text = new_format(bk, NULL, 0);
    bk->date = new_format(bk, DATE_FORMAT, 0);
    bk->seconds = new_format(bk, "#,##0.0", 0);
    bk->count = new_format(bk, "#,##0", 0);
    bk->percent = new_format(bk, "0.00%", 0);
    bk->wrap = new_format(bk, NULL, 0);
    if (bk->wrap != NULL)
        format_set_text_wrap(bk->wrap);
    bk->total_text = new_format(bk, NULL, 1);
    bk->total_count = new_format(bk, "#,##0", 1);
    bk->total_percent = new_format(bk, "0.00%", 1);
    for (size_t i = 0; i < N_STATUS_STYLES; i++) {
        bk->status[i] = new_format(bk, NULL, 0);
        if (bk->status[i] != NULL) {
            format_set_font_color(bk->status[i], status_styles[i].font);
            format_set_bg_color(bk->status[i], status_styles[i].fill);
            format_set_pattern(bk->status[i], LXW_PATTERN_SOLID);
        }
    }
}

/* "from 2026-11-30 05:00 to 06:00 (Europe/Berlin, UTC+01:00)"; the end's
 * date only when it differs. */
static void describe_hour(const ns_report_hour_t *hour, const ns_tz_t *tz,
                          char *out, size_t cap)
{
    local_time_t a = to_local(tz, hour->start_ms);
    local_time_t b = to_local(tz, hour->end_ms);
    int32_t off = ns_tz_utc_offset(tz, floor_div(hour->start_ms, 1000));
    int32_t abs_off = off < 0 ? -off : off;
    char end_date[32] = "";
    if (a.year != b.year || a.month != b.month || a.day != b.day)
        snprintf(end_date, sizeof(end_date), "%04lld-%02d-%02d ",
                 (long long)b.year, b.month, b.day);
    snprintf(out, cap,
             "from %04lld-%02d-%02d %02d:%02d to %s%02d:%02d "
             "(%s, UTC%c%02d:%02d)",
             (long long)a.year, a.month, a.day, a.hour, a.min, end_date, b.hour,
             b.min, hour->tz, off < 0 ? '-' : '+', abs_off / 3600,
             abs_off % 3600 / 60);
}

static ns_err_t finish(book_t *bk, const char *tmp, const char *path,
                       ns_error_t *err)
{
    lxw_error closed = workbook_close(bk->wb); /* frees the workbook */
    if (bk->nomem) {
        unlink(tmp);
        return ns_error_set(err, NS_ERR_NOMEM, "report %s: out of memory",
                            path);
    }
    if (bk->failed != LXW_NO_ERROR || closed != LXW_NO_ERROR) {
        lxw_error e = bk->failed != LXW_NO_ERROR ? bk->failed : closed;
        unlink(tmp);
        return ns_error_set(err, NS_ERR_IO, "report %s: %s", path,
                            lxw_strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return ns_error_set(err, NS_ERR_IO, "report %s: rename: %s", path,
                            strerror(saved));
    }
    return NS_OK;
}

ns_err_t ns_report_book_write(const char *path, const ns_report_hour_t *hour,
                              const ns_report_run_t *runs, size_t n_runs,
                              const ns_report_analysis_t *analyses,
                              size_t n_analyses, ns_error_t *err)
{
    if (path == NULL || hour == NULL || hour->tz == NULL ||
        (runs == NULL && n_runs > 0) || (analyses == NULL && n_analyses > 0))
        return ns_error_set(err, NS_ERR_INVALID, "report: missing argument");
    if (hour->end_ms <= hour->start_ms)
        return ns_error_set(err, NS_ERR_INVALID,
                            "report %s: the hour ends before it starts", path);
    const ns_tz_t *tz = ns_tz_get(hour->tz);
    if (tz == NULL)
        return ns_error_set(err, NS_ERR_INVALID,
                            "report %s: unknown time zone \"%s\"", path,
                            hour->tz);
    if (n_runs + n_analyses >= LXW_ROW_MAX - 2)
        return ns_error_set(err, NS_ERR_INVALID,
                            "report %s: %zu rows do not fit in a sheet", path,
                            n_runs + n_analyses);
    /* Written beside path and renamed, so no reader sees half a file. */
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return ns_error_set(err, NS_ERR_INVALID, "report: path too long");

    char span[160], title[200], page_title[220];
    describe_hour(hour, tz, span, sizeof(span));
    snprintf(title, sizeof(title), "nightshift hourly report %s", span);
    snprintf(page_title, sizeof(page_title), "&L%s", title);

    book_t bk = {.failed = LXW_NO_ERROR};
    bk.wb = workbook_new(tmp);
    if (bk.wb == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "report %s: out of memory",
                            path);
    lxw_doc_properties props = {.title = title,
                                .author = "nightshift",
                                .created = (time_t)(hour->end_ms / 1000)};
    note(&bk, workbook_set_properties(bk.wb, &props));
    add_formats(&bk);
    if (n_runs == 0 && n_analyses == 0) {
        empty_sheet(&bk, span, page_title);
    } else {
        runs_sheet(&bk, tz, hour->tz, page_title, runs, n_runs);
        analyses_sheet(&bk, tz, hour->tz, page_title, analyses, n_analyses);
    }
    return finish(&bk, tmp, path, err);
}

void ns_report_book_filename(const ns_report_hour_t *hour, char *out,
                             size_t cap)
{
    if (cap == 0)
        return;
    const ns_tz_t *tz = hour && hour->tz ? ns_tz_get(hour->tz) : NULL;
    if (tz == NULL)
        tz = ns_tz_get("UTC");
    int64_t start_ms = hour ? hour->start_ms : 0;
    int64_t start_s = floor_div(start_ms, 1000);
    local_time_t t = to_local(tz, start_ms);
    /* The hour repeated when clocks go back would share its name with the
     * hour before; it carries its UTC offset instead. */
    int32_t off = ns_tz_utc_offset(tz, start_s);
    char suffix[16] = "";
    if (ns_tz_local_to_utc(tz, start_s + off) != start_s) {
        int32_t abs_off = off < 0 ? -off : off;
        snprintf(suffix, sizeof(suffix), "%c%02d%02d", off < 0 ? '-' : '+',
                 abs_off / 3600, abs_off % 3600 / 60);
    }
    snprintf(out, cap, "report_%04lld-%02d-%02d_%02d%02d%s.xlsx",
             (long long)t.year, t.month, t.day, t.hour, t.min, suffix);
}
