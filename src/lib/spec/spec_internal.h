/* spec_internal.h - private to spec/: the document kinds parse.c finds, and
 * the steps it runs on them (validate.c, cloudinit.c). */
#ifndef QVM_SPEC_INTERNAL_H
#define QVM_SPEC_INTERNAL_H

#include "yaml_tree.h"

enum doc_kind { DOC_VM, DOC_USER_DATA, DOC_META_DATA, DOC_NETWORK_CONFIG, DOC_KINDS };

struct doc_ref {
    size_t index;                   /* into c->docs */
    const struct spec_node *qkey;   /* the qvm entry of the root mapping */
    const struct spec_node *qval;
};

/* Validates the vm document ROOT into *s and fills in the defaults. */
int spec_vm(struct spec_ctx *c, const struct spec_node *root, struct qvm_vm_spec *s);

/* runtime: virt-install: keeps a vm document key qvm does not model (the
 * walk's current key) as a virt-install option in s->vi_opts. */
int spec_vi_option(struct spec_ctx *c, const struct spec_node *val, const char *path,
                   struct qvm_vm_spec *s);

/* Sets s->user_data, meta_data, network_config, instance_id and hostname
 * from the documents REFS (those in HAVE); s->name must be set. */
int spec_cloud_init_texts(struct spec_ctx *c, const struct doc_ref refs[DOC_KINDS],
                          const bool have[DOC_KINDS], struct qvm_vm_spec *s);

#endif
