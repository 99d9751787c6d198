/* ui.h - how library code reports progress without printing itself.
 *
 * The CLI passes a struct qvm_ui; core code calls qvm_say() for the step
 * messages seed 000 (7.1) asks for and qvm_progress() for long copies. A NULL
 * ui is silent. */
#ifndef QVM_UI_H
#define QVM_UI_H

#include <stdbool.h>

struct qvm_ui {
    void (*say)(struct qvm_ui *ui, const char *msg);
    void (*warn)(struct qvm_ui *ui, const char *msg);
    bool show_progress;     /* a terminal is watching: let tools draw progress */
    void *ctx;
};

void qvm_say(struct qvm_ui *ui, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qvm_warn(struct qvm_ui *ui, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
