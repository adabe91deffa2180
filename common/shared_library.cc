#include "common/shared_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

namespace pagoda {

std::vector<std::string> LibraryNames(const char* env_var, std::vector<std::string> defaults) {
  if (const char* path = std::getenv(env_var); path != nullptr && *path != 0) return {path};
  return defaults;
}

void* OpenLibrary(const std::string& name, std::string& error) {
  void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* reason = dlerror();
    error = reason != nullptr ? reason : "not found";
  }
  return library;
}

void* FindSymbol(void* library, const char* name, std::string& error) {
  dlerror();
  void* symbol = dlsym(library, name);
  if (symbol == nullptr) {
    const char* reason = dlerror();
    error = absl::StrCat("symbol ", name, " is missing: ", reason != nullptr ? reason : "null");
  }
  return symbol;
}

}  // namespace pagoda
