namespace Snowflock.Tests.Unit.Xen;

/// <summary>Output of Debian's Xen 4.17.7 toolstack, captured from the nested test host
/// (scripts/xen-host) as it printed it.</summary>
internal static class XlCaptures
{
    /// <summary><c>xl list</c> on a host with no guests.</summary>
    public const string ListDom0Only = """
Name                                        ID   Mem VCPUs	State	Time(s)
Domain-0                                     0  1024     2     r-----      69.7
""" + "\n";

    /// <summary><c>xl list</c>: dom0, a running (blocked) master and a clone restored with <c>-p</c>.</summary>
    public const string ListWithPausedClone = """
Name                                        ID   Mem VCPUs	State	Time(s)
Domain-0                                     0  1024     2     r-----      80.5
ntest                                        2   128     1     -b----       4.9
c1                                           3   128     1     --p---       0.0
""" + "\n";

    /// <summary><c>xl info</c> (stdout).</summary>
    public const string Info = """
host                   : xen-dom0
release                : 6.1.0-56-amd64
version                : #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)
machine                : x86_64
nr_cpus                : 2
max_cpu_id             : 1
nr_nodes               : 1
cores_per_socket       : 2
threads_per_core       : 1
cpu_mhz                : 2596.138
hw_caps                : 1fcbf3fd:f6d8320b:ec500800:00000077:00000005:018843a9:0000020c:00000000
virt_caps              : pv hvm hap gnttab-v1 gnttab-v2
total_memory           : 4095
free_memory            : 2900
sharing_freed_memory   : 0
sharing_used_memory    : 0
outstanding_claims     : 0
free_cpus              : 0
xen_major              : 4
xen_minor              : 17
xen_extra              : .7
xen_version            : 4.17.7
xen_caps               : xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 
xen_scheduler          : credit2
xen_pagesize           : 4096
platform_params        : virt_start=0xffff800000000000
xen_changeset          : 
xen_commandline        : console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 noreboot cet=no-shstk,no-ibt smap=0
cc_compiler            : x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0
cc_compile_by          : pkg-xen-devel
cc_compile_domain      : lists.alioth.debian.org
cc_compile_date        : Wed Nov  4 16:52:28 UTC 2026
build_id               : 151b373fd64b321593bf987fd923cd10dabadac4
xend_config_format     : 4
""" + "\n";

    /// <summary><c>xl domid nosuch</c> (stderr, status 1).</summary>
    public const string DomIdMissing = """
Can't get domid of domain name 'nosuch', maybe this domain does not exist.
""" + "\n";

    /// <summary><c>xl destroy nosuch</c> (stderr, status 1).</summary>
    public const string DestroyMissing = """
nosuch is an invalid domain identifier (rc=-6)
""" + "\n";

    /// <summary><c>xl restore</c> with a name that is taken (stderr, status 1).</summary>
    public const string RestoreNameInUse = """
Loading new save file /var/lib/xen/save/ntest.chk (new xl fmt info 0x3/0x0/1042)
 Savefile contains xl domain config in JSON format
Parsing config from c1.cfg
libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain 4:Domain with name "c1" already exists.
libxl: error: libxl_create.c:1296:initiate_domain_create: Domain 4:cannot make domain: -6
libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain 4:Non-existant domain
libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain 4:Unable to destroy guest
libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain 4:Destruction of domain failed
""" + "\n";

    /// <summary><c>xl fork-vm</c> on Debian's build (status 1).</summary>
    public const string ForkVmMissing = """
command not implemented
""" + "\n";

}
