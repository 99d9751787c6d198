/* uuid.h - random (version 4) UUIDs for images, versions and VMs. */
#ifndef QVM_UUID_H
#define QVM_UUID_H

/* A new random UUID in its 36-character text form; caller frees. */
char *qvm_uuid_new(void);

#endif
