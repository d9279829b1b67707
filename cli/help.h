/* help.h: the command table of `nightshift`: every verb's usage, help,
 * examples and options, from which --help, the usage errors and the bash
 * and zsh completions are all made, so they cannot disagree. */
#ifndef NS_CLI_HELP_H
#define NS_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

/** @brief The top-level usage (every verb, one line each). */
void ns_cli_usage(FILE *out);

/** @brief `nightshift VERB [SUB] --help`: the verb's usage, what it does,
 *  its options and examples. @returns 0, or 2 (and the top-level usage on
 *  stderr) for an unknown verb. */
int ns_cli_help(const char *verb, const char *sub, FILE *out);

/** @brief A usage error of verb: what was wrong, the verb's usage and
 *  where the help is, on stderr. @returns 2. */
int ns_cli_usage_error(const char *verb, const char *sub, const char *what);

/** @brief `nightshift completion bash|zsh`. @returns 0, or 2 for another
 *  shell. */
int ns_cli_completion(const char *shell, FILE *out);

/** @brief `nightshift version [--json]`: version, commit, build type and
 *  the libraries' versions; with json one object {"version", "commit",
 *  "build", "libraries": {"librdkafka", "libcurl", ...}}. */
void ns_cli_version(FILE *out, bool json);

/** @brief "0.1.0 (commit)", as the status page shows it. */
const char *ns_cli_version_string(void);

/** @brief 1 when argv[from..argc) holds -h or --help. */
int ns_cli_wants_help(int argc, char **argv, int from);

#endif
