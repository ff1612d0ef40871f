#include "proxy/ops/auth_file.h"

#include <openssl/mem.h>

#include <string_view>

namespace dbward::proxy {
namespace {

// A double-quoted field at the start of *s (after blanks); "" is a quote.
bool TakeQuoted(std::string_view* s, std::string* out) {
  size_t i = 0;
  while (i < s->size() && ((*s)[i] == ' ' || (*s)[i] == '\t')) i++;
  if (i >= s->size() || (*s)[i] != '"') return false;
  out->clear();
  // The field is a secret: room for all of it first, so appending never
  // moves it and leaves an unwiped copy behind.
  out->reserve(s->size() - i);
  for (i++; i < s->size(); i++) {
    if ((*s)[i] != '"') {
      out->push_back((*s)[i]);
      continue;
    }
    if (i + 1 < s->size() && (*s)[i + 1] == '"') {
      out->push_back('"');
      i++;
      continue;
    }
    *s = s->substr(i + 1);
    return true;
  }
  return false;
}

}  // namespace

bool ParseAuthFile(const std::string& text, std::unordered_map<std::string, std::string>* users, int* error_line,
                   std::string* error) {
  std::unordered_map<std::string, std::string> parsed;
  auto fail = [&](int line, std::string why) {
    for (auto& [name, secret] : parsed) OPENSSL_cleanse(secret.data(), secret.size());
    *error_line = line;
    *error = std::move(why);
    return false;
  };
  std::string_view rest(text);
  for (int line = 1; !rest.empty(); line++) {
    size_t nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    size_t first = l.find_first_not_of(" \t");
    if (first == std::string_view::npos || l[first] == '#' || l[first] == ';') continue;
    std::string name, secret;
    if (!TakeQuoted(&l, &name) || !TakeQuoted(&l, &secret)) {
      OPENSSL_cleanse(secret.data(), secret.size());
      return fail(line, "expected two double-quoted fields: \"user\" \"SCRAM-SHA-256$...\"");
    }
    if (name.empty()) {
      OPENSSL_cleanse(secret.data(), secret.size());
      return fail(line, "empty user name");
    }
    if (parsed.count(name) != 0) {
      OPENSSL_cleanse(secret.data(), secret.size());
      return fail(line, "user \"" + name + "\" is listed twice");
    }
    parsed.emplace(name, std::move(secret));
  }
  for (auto& [name, secret] : *users) OPENSSL_cleanse(secret.data(), secret.size());
  *users = std::move(parsed);
  return true;
}

}  // namespace dbward::proxy
