/* The PMI-1 C API that libsfpmi implements: the subset Open MPI's flux component and MPICH-style
 * clients call. Return codes are PMI-1's. */
#ifndef SFPMI_PMI_H
#define SFPMI_PMI_H

#define PMI_SUCCESS                 0
#define PMI_FAIL                   -1
#define PMI_ERR_INIT                1
#define PMI_ERR_NOMEM               2
#define PMI_ERR_INVALID_ARG         3
#define PMI_ERR_INVALID_KEY         4
#define PMI_ERR_INVALID_KEY_LENGTH  5
#define PMI_ERR_INVALID_VAL         6
#define PMI_ERR_INVALID_VAL_LENGTH  7
#define PMI_ERR_INVALID_LENGTH      8

#define SFPMI_API __attribute__((visibility("default")))

SFPMI_API int PMI_Init(int *spawned);
SFPMI_API int PMI_Initialized(int *initialized);
SFPMI_API int PMI_Finalize(void);
SFPMI_API int PMI_Get_size(int *size);
SFPMI_API int PMI_Get_rank(int *rank);
SFPMI_API int PMI_Get_universe_size(int *size);
SFPMI_API int PMI_Get_appnum(int *appnum);
SFPMI_API int PMI_Get_id(char id_str[], int length);
SFPMI_API int PMI_Get_kvs_domain_id(char id_str[], int length);
SFPMI_API int PMI_Get_id_length_max(int *length);
SFPMI_API int PMI_Barrier(void);
SFPMI_API int PMI_Abort(int exit_code, const char error_msg[]);
SFPMI_API int PMI_Get_clique_size(int *size);
SFPMI_API int PMI_Get_clique_ranks(int ranks[], int length);
SFPMI_API int PMI_KVS_Get_my_name(char kvsname[], int length);
SFPMI_API int PMI_KVS_Get_name_length_max(int *length);
SFPMI_API int PMI_KVS_Get_key_length_max(int *length);
SFPMI_API int PMI_KVS_Get_value_length_max(int *length);
SFPMI_API int PMI_KVS_Put(const char kvsname[], const char key[], const char value[]);
SFPMI_API int PMI_KVS_Commit(const char kvsname[]);
SFPMI_API int PMI_KVS_Get(const char kvsname[], const char key[], char value[], int length);

#endif
