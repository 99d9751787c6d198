/* fuzz_spec.c - libFuzzer target for the qvm file parser.
 *
 * Beyond "no crash, no leak", it checks what the parser promises: on
 * success every cloud-init text is itself one valid YAML document (the cut
 * out of the original bytes must never produce broken YAML), user-data
 * starts with #cloud-config, and meta-data carries the identity fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_yaml(const char *text)
{
    yaml_parser_t p;
    if (!text || !yaml_parser_initialize(&p))
        abort();
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    int docs = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev))
            abort();    /* the parser produced text that is not YAML */
        yaml_event_type_t t = ev.type;
        yaml_event_delete(&ev);
        if (t == YAML_DOCUMENT_START_EVENT)
            docs++;
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    if (docs > 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qvm_vm_spec spec;
    struct qvm_error err = { 0 };
    if (qvm_spec_parse("fuzz.yaml", (const char *)data, size, &spec, &err) < 0) {
        if (err.code == 0 || err.msg[0] == '\0')
            abort();    /* every failure carries a message */
        return 0;
    }
    if (!spec.name || !spec.disk.base || !spec.instance_id || !spec.hostname || !spec.meta_data ||
        strncmp(spec.user_data, "#cloud-config", 13) != 0)
        abort();
    check_yaml(spec.user_data);
    check_yaml(spec.meta_data);
    if (spec.network_config)
        check_yaml(spec.network_config);
    qvm_spec_release(&spec);
    qvm_spec_release(&spec);    /* release of a zeroed struct is allowed */
    return 0;
}
