/* One lookup for the preloaded wrappers of native/ucx and native/init: the definition a wrapper
 * stands in front of. RTLD_NEXT sees only the global scope; a library loaded by a dlopen without
 * RTLD_GLOBAL (Python's mpi4py loads its MPI, and with it UCX, that way) is not in it although
 * its calls still reach the wrappers first, so the libraries in `owners` that can define the
 * symbol are also asked directly, without loading anything that is not loaded already. */
#ifndef SF_PRELOAD_SYMBOL_H
#define SF_PRELOAD_SYMBOL_H

#include <dlfcn.h>
#include <stddef.h>

static inline void *sf_preload_next(const char *name, const char *const *owners, size_t n_owners)
{
    dlerror();
    void *p = dlsym(RTLD_NEXT, name);
    for (size_t i = 0; p == NULL && i < n_owners; i++) {
        void *h = dlopen(owners[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL) {
            p = dlsym(h, name);
            dlclose(h); /* drops only the reference RTLD_NOLOAD took */
        }
    }
    return p;
}

#endif
