/* cmd_image.c - qvm image import|ls */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/image.h"
#include "core/image_edit.h"
#include "core/stream.h"
#include "util/names.h"

static int image_import(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "pool", required_argument, NULL, 'p' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    const char *pool = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "p:", opts, NULL)) != -1) {
        if (c == 'p')
            pool = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_image, "unknown option");
    }
    if (argc - optind != 2)
        return cli_usage(&cmd_image, "import needs NAME and FILE");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_import(&cli->ctx, pool, argv[optind], argv[optind + 1], &err);
    if (r == 0 && cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "image", json_object_new_string(argv[optind]));
        json_object_object_add(o, "version", json_object_new_string("v1"));
        cli_print_json(o);
    }
    cli_close(cli);
    return r < 0 ? cli_fail("importing cloud image", &err) : 0;
}

static int image_ls(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_image, "unknown option");
    if (nargs != 0)
        return cli_usage(&cmd_image, "ls takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_image *imgs;
    size_t n;
    int r = qvm_image_list(&cli->ctx, &imgs, &n, &err);
    if (r < 0) {
        cli_close(cli);
        return cli_fail("listing images", &err);
    }
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(imgs[i].name));
            json_object_object_add(o, "pool", json_object_new_string(imgs[i].pool));
            json_object *vs = json_object_new_array();
            for (size_t k = 0; k < imgs[i].nversions; k++) {
                const struct qvm_image_version *v = &imgs[i].versions[k];
                json_object *jv = json_object_new_object();
                json_object_object_add(jv, "name", json_object_new_string(v->name));
                json_object_object_add(jv, "uuid", json_object_new_string(v->uuid));
                json_object_object_add(jv, "created", json_object_new_int64(v->created));
                json_object_object_add(jv, "size", json_object_new_int64((int64_t)v->size));
                json_object_object_add(jv, "state", json_object_new_string(v->state));
                json_object_array_add(vs, jv);
            }
            json_object_object_add(o, "versions", vs);
            json_object_array_add(arr, o);
        }
        cli_print_json(arr);
    } else {
        printf("%-20s %-10s %-8s %-8s %s\n", "NAME", "POOL", "LATEST", "SIZE", "VERSIONS");
        for (size_t i = 0; i < n; i++) {
            const struct qvm_image_version *last = imgs[i].nversions ?
                &imgs[i].versions[imgs[i].nversions - 1] : NULL;
            char size[16] = "-";
            if (last)
                cli_human_size(last->size, size, sizeof size);
            printf("%-20s %-10s %-8s %-8s %zu\n", imgs[i].name, imgs[i].pool,
                   last ? last->name : "-", size, imgs[i].nversions);
        }
    }
    for (size_t i = 0; i < n; i++)
        qvm_image_release(&imgs[i]);
    free(imgs);
    cli_close(cli);
    return 0;
}

/* Options and one argument: qvm image VERB [--pool P] REF */
static int one_ref(struct cli *cli, int argc, char **argv, const char **ret_pool,
                   const char **ret_ref)
{
    static const struct option opts[] = { { "pool", required_argument, NULL, 'p' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    int c;
    *ret_pool = NULL;
    while ((c = getopt_long(argc, argv, "p:", opts, NULL)) != -1) {
        if (c == 'p')
            *ret_pool = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_image, "unknown option");
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_image, "%s needs one image%s", argv[0],
                         strcmp(argv[0], "versions") ? " version (NAME@vN)" : " NAME");
    *ret_ref = argv[optind];
    return 0;
}

static int image_versions(struct cli *cli, int argc, char **argv)
{
    const char *pool, *name;
    if (one_ref(cli, argc, argv, &pool, &name))
        return 1;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_image img;
    int r = qvm_image_load(&cli->ctx, pool, name, &img, &err);
    if (r < 0) {
        cli_close(cli);
        return cli_fail("listing image versions", &err);
    }
    json_object *arr = cli->json ? json_object_new_array() : NULL;
    if (!arr)
        printf("%-6s %-12s %-8s %-7s %-20s %s\n", "VERSION", "STATE", "SIZE", "PARENT", "CREATED",
               "UUID");
    for (size_t i = 0; i < img.nversions; i++) {
        const struct qvm_image_version *v = &img.versions[i];
        char **deps;
        size_t ndeps = 0;
        qvm_image_dependents(&cli->ctx, img.pool, img.name, v->name, &deps, &ndeps, NULL);
        if (arr) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(v->name));
            json_object_object_add(o, "uuid", json_object_new_string(v->uuid));
            json_object_object_add(o, "state", json_object_new_string(v->state));
            json_object_object_add(o, "created", json_object_new_int64(v->created));
            json_object_object_add(o, "parent", v->parent ? json_object_new_string(v->parent) : NULL);
            json_object_object_add(o, "size", json_object_new_int64((int64_t)v->size));
            json_object_object_add(o, "data_removed", json_object_new_boolean(v->removed));
            json_object *vms = json_object_new_array();
            for (size_t k = 0; k < ndeps; k++)
                json_object_array_add(vms, json_object_new_string(deps[k]));
            json_object_object_add(o, "vms", vms);
            json_object_array_add(arr, o);
        } else {
            char size[16], when[32];
            time_t t = (time_t)v->created;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&t));
            cli_human_size(v->size, size, sizeof size);
            printf("%-6s %-12s %-8s %-7s %-20s %s%s\n", v->name, v->state, size,
                   v->parent ? v->parent : "-", when, v->uuid, v->removed ? "  (data freed)" : "");
        }
        for (size_t k = 0; k < ndeps; k++)
            free(deps[k]);
        free(deps);
    }
    if (arr)
        cli_print_json(arr);
    qvm_image_release(&img);
    cli_close(cli);
    return 0;
}

static int image_state(struct cli *cli, int argc, char **argv, const char *state)
{
    const char *pool, *ref;
    if (one_ref(cli, argc, argv, &pool, &ref))
        return 1;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_set_state(&cli->ctx, pool, ref, state, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("changing image version state", &err) : 0;
}

static int image_rm(struct cli *cli, int argc, char **argv)
{
    const char *pool, *ref;
    if (one_ref(cli, argc, argv, &pool, &ref))
        return 1;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_remove(&cli->ctx, pool, ref, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("removing image", &err) : 0;
}

static int image_commit(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "from", required_argument, NULL, 'f' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    const char *from = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (c == 'f')
            from = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_image, "unknown option");
    }
    if (argc - optind != 1 || !from)
        return cli_usage(&cmd_image, "commit needs NAME and --from VM");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_commit(&cli->ctx, argv[optind], from, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("committing image version", &err) : 0;
}

static int image_edit(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "vm", required_argument, NULL, 'v' }, { "pool", required_argument, NULL, 'p' },
        { "memory", required_argument, NULL, 'm' }, { "vcpus", required_argument, NULL, 'c' },
        { "ssh-key", required_argument, NULL, 'k' }, { "no-ssh-keys", no_argument, NULL, 'K' },
        { "no-start", no_argument, NULL, 'S' }, CLI_COMMON_OPTIONS, { 0 } };
    struct qvm_image_edit_opts eo = { 0 };
    const char *keys[9] = { 0 };
    size_t nkeys = 0;
    char *end;
    unsigned long n;
    int c;
    while ((c = getopt_long(argc, argv, "p:", opts, NULL)) != -1) {
        switch (c) {
        case 'v': eo.vm = optarg; break;
        case 'p': eo.pool = optarg; break;
        case 'K': eo.no_ssh_keys = true; break;
        case 'S': eo.no_start = true; break;
        case 'k':
            if (nkeys == 8)
                return cli_usage(&cmd_image, "at most 8 --ssh-key files");
            keys[nkeys++] = optarg;
            break;
        case 'm':
        case 'c':
            errno = 0;
            n = strtoul(optarg, &end, 10);
            if (errno || *end || n == 0 || n > (c == 'm' ? 1u << 22 : 256u))
                return cli_usage(&cmd_image, "--%s takes a number (%s)",
                                 c == 'm' ? "memory" : "vcpus",
                                 c == 'm' ? "MiB, 1 to 4194304" : "1 to 256");
            if (c == 'm')
                eo.memory_mib = (unsigned)n;
            else
                eo.vcpus = (unsigned)n;
            break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_image, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_image, "edit needs NAME or NAME@vN");
    eo.ssh_keys = keys;
    char name[QVM_NAME_MAX + 1], version[QVM_NAME_MAX + 1];
    struct qvm_error err = { 0 };
    if (qvm_image_ref_parse(argv[optind], name, version, &err) < 0)
        return cli_fail("editing image", &err);
    eo.version = version[0] ? version : NULL;
    if (cli_open(cli))
        return 1;
    int r = qvm_image_edit(&cli->ctx, name, &eo, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("editing image", &err) : 0;
}

static int image_send(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "from", required_argument, NULL, 'f' },
                                          { "pool", required_argument, NULL, 'p' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    const char *from = NULL, *pool = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "f:p:", opts, NULL)) != -1) {
        if (c == 'f')
            from = optarg;
        else if (c == 'p')
            pool = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_image, "unknown option");
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_image, "send needs one NAME@vN");
    if (isatty(STDOUT_FILENO))
        return cli_usage(&cmd_image, "send writes a binary stream: redirect it to a file or a pipe");
    cli->quiet = true;       /* stdout carries the stream */
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_send(&cli->ctx, pool, argv[optind], from, STDOUT_FILENO, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("sending image version", &err) : 0;
}

static int image_receive(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "pool", required_argument, NULL, 'p' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    const char *pool = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "p:", opts, NULL)) != -1) {
        if (c == 'p')
            pool = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_image, "unknown option");
    }
    if (argc != optind)
        return cli_usage(&cmd_image, "receive reads the stream from stdin and takes no arguments");
    if (isatty(STDIN_FILENO))
        return cli_usage(&cmd_image, "receive reads a stream on stdin: redirect a file or a pipe");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_image_receive(&cli->ctx, pool, STDIN_FILENO, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("receiving image version", &err) : 0;
}

static int run_image(struct cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(&cmd_image, "missing subcommand");
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "import") == 0)
        return image_import(cli, argc, argv);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return image_ls(cli, argc, argv);
    if (strcmp(sub, "versions") == 0)
        return image_versions(cli, argc, argv);
    if (strcmp(sub, "publish") == 0)
        return image_state(cli, argc, argv, "published");
    if (strcmp(sub, "unpublish") == 0)
        return image_state(cli, argc, argv, "unpublished");
    if (strcmp(sub, "deprecate") == 0)
        return image_state(cli, argc, argv, "deprecated");
    if (strcmp(sub, "retire") == 0)
        return image_state(cli, argc, argv, "retired");
    if (strcmp(sub, "rm") == 0)
        return image_rm(cli, argc, argv);
    if (strcmp(sub, "commit") == 0)
        return image_commit(cli, argc, argv);
    if (strcmp(sub, "edit") == 0)
        return image_edit(cli, argc, argv);
    if (strcmp(sub, "send") == 0)
        return image_send(cli, argc, argv);
    if (strcmp(sub, "receive") == 0 || strcmp(sub, "recv") == 0)
        return image_receive(cli, argc, argv);
    return cli_usage(&cmd_image, "unknown subcommand '%s'", sub);
}

const struct cli_command cmd_image = {
    .name = "image",
    .run = run_image,
    .summary = "import cloud images; list, version, publish, retire and remove them",
    .help =
        "Usage: qvm image import [--pool POOL] NAME FILE\n"
        "       qvm image ls [--json]\n"
        "       qvm image versions [--json] NAME\n"
        "       qvm image publish|unpublish|deprecate|retire NAME@vN\n"
        "       qvm image rm NAME[@vN]\n"
        "       qvm image edit [--vm VM] [--memory MiB] [--vcpus N] [--ssh-key FILE]\n"
        "                      [--no-ssh-keys] [--no-start] NAME[@vN]\n"
        "       qvm image commit NAME --from VM\n"
        "       qvm image send [--from vM] NAME@vN > FILE\n"
        "       qvm image receive [--pool POOL] < FILE\n"
        "\n"
        "qvm image import turns a cloud image into a versioned base image that VMs are\n"
        "cloned from. FILE is a raw or qcow2 disk image (compressed files and other\n"
        "formats are refused with a hint). The data is copied sparsely into the pool\n"
        "as version v1 of image NAME, which is immutable from then on and is also\n"
        "reachable as NAME@base, the name seed qvm files use (disk.zvol.base).\n"
        "\n"
        "The import is atomic: if any step fails, or qvm is killed, nothing of the\n"
        "image remains (the next qvm command rolls back an interrupted import). On a\n"
        "terminal, the copy shows its progress.\n"
        "\n"
        "qvm image ls lists every image with its pool, newest version and size;\n"
        "qvm image versions lists one image's versions with their state, size,\n"
        "parent, creation time, UUID and the VMs cloned from each.\n"
        "\n"
        "Versions follow a life cycle: draft (being administered), unpublished,\n"
        "published, deprecated (no new VMs; existing ones keep running), retired.\n"
        "'qvm up' with disk.zvol.base: NAME takes the newest published version;\n"
        "NAME@vN pins one (refused if it is deprecated, retired or a draft). A\n"
        "retired version's space comes back as soon as no VM uses it.\n"
        "\n"
        "qvm image commit makes the next version of NAME from the disk of a stopped\n"
        "VM in the same pool (the administration step: 'qvm up' a VM from the image,\n"
        "change it, stop it, commit). The new version starts unpublished, with the\n"
        "version the VM came from as its parent; publish it when it is ready.\n"
        "\n"
        "qvm image edit is that step's first half in one command: it provisions and\n"
        "starts a working VM (default name NAME-edit; 1024 MiB, 1 vCPU, user\n"
        "network) cloned from the newest version that is not retired (or from vN),\n"
        "drafts and deprecated versions included, with your ~/.ssh/id_*.pub keys\n"
        "(and any --ssh-key FILE) installed, so 'qvm ssh NAME-edit' works. Change\n"
        "it, stop it, then 'qvm image commit NAME --from NAME-edit'.\n"
        "\n"
        "qvm image send writes one version as a stream, whole or (--from) only the\n"
        "changes since an earlier version; qvm image receive creates that version in\n"
        "a pool of the same driver (zfs send, btrfs send, or qvm's block delta for\n"
        "dir pools, framed with a SHA-256). Nothing is visible until the whole\n"
        "stream has arrived and checked; a cut-short stream leaves nothing behind.\n"
        "\n"
        "qvm image rm removes an image, or one version, that no VM uses; otherwise it\n"
        "is refused with the names of those VMs. Nothing is ever half-removed.\n"
        "\n"
        "Options:\n"
        "  --pool POOL  the pool to import into (default: the default pool)\n"
        "  --json       machine-readable output\n"
        "\n"
        "Names: lower-case letters, digits, '.', '_' and '-', starting with a letter\n"
        "or digit, at most 63 characters.\n"
        "\n"
        "Errors (exit status 1, 'Error importing cloud image: ...'): the image file\n"
        "cannot be found or read; its size cannot be retrieved; it is compressed, a\n"
        "qcow2 overlay with a backing file, or another format; the image exists; the\n"
        "copy fails (for example, the pool is full).\n"
        "\n"
        "Examples:\n"
        "  qvm image import debian12 debian-12-genericcloud-amd64.qcow2\n"
        "  qvm image ls --json\n"
        "  qvm image edit debian12 && qvm ssh debian12-edit\n"
        "  qvm stop debian12-edit && qvm image commit debian12 --from debian12-edit\n",
};
