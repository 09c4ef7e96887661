// Registers the RoBERTa classifier (`RobertaClassifier`) on the addon's exports (called from ../addon.cpp).
#pragma once
#include <napi.h>

namespace bp::roberta {
void registerAddon(Napi::Env env, Napi::Object exports);
}
