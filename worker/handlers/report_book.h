/* report_book.h: the hourly report's Excel workbook (seed 001), built with
 * libxlsxwriter from plain data: the hour's runs and analyses in, an .xlsx
 * file out. No database access; the reports-generator handler gathers rows. */
#ifndef NS_REPORT_BOOK_H
#define NS_REPORT_BOOK_H

#include <stddef.h>
#include <stdint.h>

#include "ns/err.h"

/** One run of any job that started in the hour. */
typedef struct ns_report_run {
    const char *job;
    int64_t run_id;
    int64_t started_ms; /**< epoch ms */
    const char *status; /**< running / succeeded / failed / ... */
    double duration_s;  /**< < 0: unknown (still running) */
    int64_t items_done; /**< items that succeeded */
    int64_t items_failed;
    int64_t items_total; /**< not shown; reserved for progress */
} ns_report_run_t;

/** One analysis written in the hour. */
typedef struct ns_report_analysis {
    const char *project;
    int64_t created_ms; /**< epoch ms */
    const char *model;
    int64_t tokens;
    const char *content; /**< only its first lines go in */
} ns_report_analysis_t;

/** The hour reported on. */
typedef struct ns_report_hour {
    int64_t start_ms, end_ms; /**< [start, end), epoch ms */
    const char *tz;           /**< IANA name; dates are shown in this zone */
} ns_report_hour_t;

/** @brief Writes the workbook to path: sheet "Hourly Report" (one row per
 *  run, a totals row) and sheet "Analyses"; for an hour with no runs and no
 *  analyses, one sheet "No activity" saying so.
 *  @returns NS_OK; NS_ERR_INVALID for an unknown time zone or a NULL
 *  argument; NS_ERR_IO when the file cannot be written; NS_ERR_NOMEM.
 *  @remark Text is cleaned first: invalid UTF-8 becomes U+FFFD, control
 *  characters are removed, and every text cell is a string cell (never a
 *  formula), whatever it begins with. The file appears at path only once
 *  it is complete (written beside it, then renamed). */
ns_err_t ns_report_book_write(const char *path, const ns_report_hour_t *hour,
                              const ns_report_run_t *runs, size_t n_runs,
                              const ns_report_analysis_t *analyses,
                              size_t n_analyses, ns_error_t *err);

/** @brief The dated attachment file name of the hour, from its local start:
 *  "report_2026-11-30_0500.xlsx". An unknown zone falls back to UTC. */
void ns_report_book_filename(const ns_report_hour_t *hour, char *out,
                             size_t cap);

#endif
