/* Shows what machine a rank believes it is on, for the --isolate tests: its host name, its IPv4
 * addresses other than loopback, its pid, the host name MPI reports and UCX_TLS; then rank 0 gathers a
 * token from every rank (MPI traffic between the clones) and prints the sum. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char host[256] = "?", mpi_host[MPI_MAX_PROCESSOR_NAME] = "?", addresses[512] = "";
    int len;
    gethostname(host, sizeof host);
    MPI_Get_processor_name(mpi_host, &len);
    struct ifaddrs *all;
    if (getifaddrs(&all) == 0) {
        for (struct ifaddrs *a = all; a; a = a->ifa_next) {
            if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || strcmp(a->ifa_name, "lo") == 0)
                continue;
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, text, sizeof text);
            if (strlen(addresses) + strlen(text) + 2 < sizeof addresses) {
                strcat(addresses, addresses[0] ? "," : "");
                strcat(addresses, text);
            }
        }
        freeifaddrs(all);
    }
    const char *tls = getenv("UCX_TLS");
    printf("rank %d host %s ip %s pid %d mpihost %s ucx_tls %s\n", rank, host, addresses[0] ? addresses : "-", (int)getpid(), mpi_host,
           tls ? tls : "-");
    fflush(stdout);
    int token = rank + 1, sum = 0;
    MPI_Reduce(&token, &sum, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("sum %d of %d ranks\n", sum, size);
    MPI_Finalize();
    return 0;
}
