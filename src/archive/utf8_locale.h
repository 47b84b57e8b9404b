// libarchive converts names through the thread's locale; wharf's names are UTF-8 whatever
// the caller's LANG (a FEC often boots with none). This switches the calling thread to
// C.UTF-8 for the object's lifetime, then back.
#pragma once

#include <clocale>
#include <locale.h>

namespace wharf {

class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale() : locale_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0))) {
    if (locale_ != static_cast<locale_t>(0)) previous_ = ::uselocale(locale_);
  }
  ~ScopedUtf8Locale() {
    if (locale_ == static_cast<locale_t>(0)) return;
    ::uselocale(previous_);
    ::freelocale(locale_);
  }
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  locale_t locale_;
  locale_t previous_ = LC_GLOBAL_LOCALE;
};

}  // namespace wharf
