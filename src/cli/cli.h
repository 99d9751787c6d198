/* cli.h - shared by the qvm command files: global options, output and the
 * command table. The CLI is thin: parse arguments, call one core function,
 * print its result or its error. */
#ifndef QVM_CLI_H
#define QVM_CLI_H

#include <stdbool.h>

#include <json-c/json.h>

#include "core/context.h"
#include "util/error.h"

struct cli {
    const char *root;       /* --root */
    bool json;              /* --json: machine-readable output on stdout */
    bool quiet;             /* --quiet: no progress messages */
    struct qvm_ui ui;
    struct qvm_ctx ctx;
};

struct cli_command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *summary;
    const char *help;       /* the full --help text */
};

/* Sets up the ui and the context (which rolls back interrupted operations).
 * Prints the error and returns 1 on failure. */
int cli_open(struct cli *cli);
void cli_close(struct cli *cli);

/* "Error TASK: MESSAGE" on stderr; returns 1 (the exit status). */
int cli_fail(const char *task, const struct qvm_error *err);

/* Usage error: the message and the command's synopsis on stderr; returns 1. */
int cli_usage(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True if ARG is -h or --help; prints CMD's help on stdout. */
bool cli_want_help(const struct cli_command *cmd, int argc, char **argv);

/* Prints O as pretty JSON on stdout and puts it. */
void cli_print_json(json_object *o);

/* "1.5G", "512M" */
void cli_human_size(unsigned long long bytes, char *buf, size_t len);

/* Options every command accepts after its name as well as before it. */
#define CLI_COMMON_OPTIONS \
    { "json", no_argument, NULL, 0x101 }, \
    { "quiet", no_argument, NULL, 0x102 }, \
    { "root", required_argument, NULL, 0x103 }

/* Handles a common option; returns true if C was one. */
bool cli_common_option(struct cli *cli, int c, const char *arg);

/* For a command that takes only the common options: parses them and returns
 * the number of operands left from argv[optind], or -1 on an unknown option. */
int cli_operand_count(struct cli *cli, int argc, char **argv);

extern const struct cli_command cmd_pool, cmd_image, cmd_up, cmd_ls, cmd_start, cmd_stop, cmd_rm,
    cmd_console, cmd_exec, cmd_wait, cmd_doctor;
/* issue 4, control: */
extern const struct cli_command cmd_restart, cmd_pause, cmd_resume, cmd_info, cmd_ssh;
/* issue 4, edit, resize and autostart (cmd_edit.c): */
extern const struct cli_command cmd_edit, cmd_resize, cmd_autostart;
/* issue 4, snapshots and clones (cmd_snapshot.c): */
extern const struct cli_command cmd_snapshot, cmd_revert, cmd_clone;
/* issue 4, bundles: */
extern const struct cli_command cmd_export, cmd_import, cmd_scan;
/* issue 5, memory (cmd_host.c): */
extern const struct cli_command cmd_host;
/* issue 5, networks (cmd_net.c): */
extern const struct cli_command cmd_net;
/* issue 6, libvirt (cmd_adopt.c): */
extern const struct cli_command cmd_adopt;
struct qvm_vm;
/* qvm console of a VM under libvirt: raw terminal, libvirt's console stream. */
int cli_console_libvirt(struct cli *cli, const struct qvm_vm *vm);

#endif
