/* cmd_net.c - qvm net create|ls|rm|up: qvm-managed networks */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/net.h"
#include "util/strbuf.h"

static int net_create(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "subnet", required_argument, NULL, 's' }, CLI_COMMON_OPTIONS, { 0 },
    };
    const char *subnet = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            subnet = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_net, "unknown option");
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_net, "net create takes one network name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    const char *name = argv[optind];
    int r = qvm_net_create(&cli->ctx, name, subnet, &err);
    struct qvm_network n;
    if (r == 0 && qvm_net_load(&cli->ctx, name, &n, &err) == 0) {
        char sub[40], gw[16];
        qvm_net_format_subnet(&n, sub, sizeof sub);
        qvm_net_format_ip(n.gateway, gw, sizeof gw);
        qvm_say(&cli->ui, "Network '%s' is up: bridge %s, %s, gateway and DNS %s, NAT to the "
                "host's other interfaces", name, n.bridge, sub, gw);
        qvm_net_release(&n);
    }
    cli_close(cli);
    return r < 0 ? cli_fail("creating network", &err) : 0;
}

static int net_rm(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_net, "unknown option");
    if (nargs < 1)
        return cli_usage(&cmd_net, "net rm takes network names");
    if (cli_open(cli))
        return 1;
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        struct qvm_error err = { 0 };
        if (qvm_net_remove(&cli->ctx, argv[i], &err) < 0)
            rc = cli_fail("removing network", &err);
        else
            qvm_say(&cli->ui, "Network '%s' removed: bridge, NAT rules and dnsmasq are gone",
                    argv[i]);
    }
    cli_close(cli);
    return rc;
}

static int net_up(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_net, "unknown option");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    char **names = NULL;
    size_t nn = 0;
    int r = 0;
    if (nargs == 0) {
        r = qvm_net_list_names(&cli->ctx, &names, &nn, &err);
    } else {
        for (int i = optind; i < argc; i++) {
            names = xrealloc(names, (nn + 1) * sizeof *names);
            names[nn++] = xstrdup(argv[i]);
        }
    }
    int rc = r < 0 ? cli_fail("bringing up network", &err) : 0;
    for (size_t i = 0; i < nn; i++) {
        /* Each network on its own: one that fails does not keep the rest down. */
        struct qvm_error e = { 0 };
        int rr = qvm_net_start(&cli->ctx, names[i], &e);
        if (rr == 0)
            qvm_say(&cli->ui, "Network '%s' is up", names[i]);
        if (rr < 0)
            rc = cli_fail("bringing up network", &e);
        free(names[i]);
    }
    free(names);
    cli_close(cli);
    return rc;
}

static int net_ls(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_net, "unknown option");
    if (nargs != 0)
        return cli_usage(&cmd_net, "net ls takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    char **names;
    size_t nn;
    int r = qvm_net_list_names(&cli->ctx, &names, &nn, &err);
    if (r < 0) {
        cli_close(cli);
        return cli_fail("listing networks", &err);
    }
    json_object *arr = json_object_new_array();
    if (!cli->json)
        printf("%-12s %-18s %-15s %-6s %-8s %s\n", "NAME", "SUBNET", "BRIDGE", "STATE", "DNSMASQ",
               "VMS");
    for (size_t i = 0; i < nn; i++) {
        struct qvm_network n;
        if (qvm_net_load(&cli->ctx, names[i], &n, NULL) == 0) {
            struct qvm_net_status st;
            qvm_net_status(&cli->ctx, &n, &st);
            char **users = NULL;
            size_t nu = 0;
            qvm_net_users(&cli->ctx, n.name, &users, &nu, NULL);
            char sub[40], gw[16];
            qvm_net_format_subnet(&n, sub, sizeof sub);
            qvm_net_format_ip(n.gateway, gw, sizeof gw);
            bool up = st.bridge && st.nat && st.dnsmasq;
            const char *state = up ? "up" : !st.bridge && !st.nat && !st.supervisor ? "down"
                                                                                       : "partly";
            if (cli->json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "name", json_object_new_string(n.name));
                json_object_object_add(o, "subnet", json_object_new_string(sub));
                json_object_object_add(o, "gateway", json_object_new_string(gw));
                json_object_object_add(o, "bridge", json_object_new_string(n.bridge));
                json_object_object_add(o, "state", json_object_new_string(state));
                json_object_object_add(o, "bridge_up", json_object_new_boolean(st.bridge));
                json_object_object_add(o, "nat", json_object_new_boolean(st.nat));
                json_object_object_add(o, "supervisor_pid", json_object_new_int((int)st.supervisor));
                json_object_object_add(o, "dnsmasq_pid", json_object_new_int((int)st.dnsmasq));
                json_object *vms = json_object_new_array();
                for (size_t k = 0; k < nu; k++) {
                    json_object *v = json_object_new_object();
                    char ip[16];
                    json_object_object_add(v, "name", json_object_new_string(users[k]));
                    json_object_object_add(v, "ip", qvm_net_lease_of(&n, users[k], ip)
                                                    ? json_object_new_string(ip) : NULL);
                    json_object_array_add(vms, v);
                }
                json_object_object_add(o, "vms", vms);
                json_object_array_add(arr, o);
            } else {
                char dpid[16] = "-";
                if (st.dnsmasq)
                    snprintf(dpid, sizeof dpid, "%d", (int)st.dnsmasq);
                printf("%-12s %-18s %-15s %-6s %-8s ", n.name, sub, n.bridge, state, dpid);
                for (size_t k = 0; k < nu; k++) {
                    char ip[16];
                    if (qvm_net_lease_of(&n, users[k], ip))
                        printf("%s%s (%s)", k ? ", " : "", users[k], ip);
                    else
                        printf("%s%s", k ? ", " : "", users[k]);
                }
                printf("%s\n", nu ? "" : "-");
            }
            for (size_t k = 0; k < nu; k++)
                free(users[k]);
            free(users);
            qvm_net_release(&n);
        }
        free(names[i]);
    }
    free(names);
    cli_close(cli);
    if (cli->json)
        cli_print_json(arr);
    else
        json_object_put(arr);
    return 0;
}

static int net_supervise(struct cli *cli, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage(&cmd_net, "net supervise takes one network name");
    cli->quiet = true;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_net_supervise(&cli->ctx, argv[1], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("supervising dnsmasq", &err) : 0;
}

static int run_net(struct cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(&cmd_net, "net needs a subcommand: create, ls, rm or up");
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "create") == 0)
        return net_create(cli, argc, argv);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return net_ls(cli, argc, argv);
    if (strcmp(sub, "rm") == 0)
        return net_rm(cli, argc, argv);
    if (strcmp(sub, "up") == 0)
        return net_up(cli, argc, argv);
    if (strcmp(sub, "supervise") == 0)
        return net_supervise(cli, argc, argv);
    return cli_usage(&cmd_net, "unknown net subcommand '%s' (create, ls, rm or up)", sub);
}

const struct cli_command cmd_net = {
    .name = "net",
    .run = run_net,
    .summary = "qvm-managed networks: bridge, NAT, DHCP with static leases, VM names",
    .help =
        "Usage: qvm net create [--subnet A.B.C.D/P] NAME\n"
        "       qvm net ls [--json]\n"
        "       qvm net rm NAME...\n"
        "       qvm net up [NAME...]\n"
        "\n"
        "A qvm network is a Linux bridge qvm-NAME holding the subnet's first address,\n"
        "NAT from the subnet to the host's other interfaces (one nftables table, ip\n"
        "qvm-NAME; IPv4 forwarding is turned on while a qvm network exists and put\n"
        "back after the last one goes), and a dnsmasq that qvm configures and\n"
        "supervises: it serves DHCP and DNS on the bridge only, and gives each VM a\n"
        "static lease for its MAC, which qvm derives from the VM's name and pool. A VM\n"
        "joins with `network: network=NAME` (or `network: {network: NAME}`, or one item\n"
        "of a list) in its qvm file, on qvm's own QEMU through a tap device that\n"
        "vanishes with the VM. The lease is made at the VM's first start and kept\n"
        "until `qvm rm`.\n"
        "\n"
        "Names: dnsmasq answers NAME and NAME.qvm for every VM on the network, to\n"
        "the guests. For the host, add qvm to the hosts line of /etc/nsswitch.conf\n"
        "(hosts: files qvm dns): the NSS module libnss_qvm then resolves the VMs'\n"
        "names for every program, so `ssh web1` and `ping web1.qvm` work.\n"
        "\n"
        "  create  make and bring up a network. Without --subnet, the first free\n"
        "          10.200.N.0/24; a subnet that overlaps an address or route of the\n"
        "          host or another qvm network is refused. Prefix 16 to 29. All or\n"
        "          nothing: a failure or an interrupted create leaves nothing behind.\n"
        "  ls      networks with their subnet, bridge, state (up, down, partly),\n"
        "          dnsmasq's pid, and the VMs on each with their address.\n"
        "  rm      take down and forget: bridge, NAT table, dnsmasq and its files.\n"
        "          Refused, naming them, while VMs use the network.\n"
        "  up      bring networks (default: all) up again, after a host reboot;\n"
        "          `qvm start` does it too for the networks of the VM it starts.\n"
        "\n"
        "dnsmasq's log is /var/lib/qvm/networks/NAME/dnsmasq.log; its supervisor\n"
        "(`qvm net supervise NAME`, started by create and up) restarts it when it\n"
        "dies and stops it on SIGTERM.\n"
        "\n"
        "Options:\n"
        "  --subnet A.B.C.D/P  the network's IPv4 subnet (create)\n"
        "  --json              ls: an array of {name, subnet, gateway, bridge, state,\n"
        "                      bridge_up, nat, supervisor_pid, dnsmasq_pid,\n"
        "                      vms [{name, ip}]}\n"
        "\n"
        "Examples:\n"
        "  qvm net create lan --subnet 10.10.0.0/24\n"
        "  qvm net ls\n"
        "  qvm net rm lan\n",
};
