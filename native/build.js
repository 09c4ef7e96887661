#!/usr/bin/env node
// Builds the native engine at install time. Replaced by the native engine's real build script.
console.log('native: nothing to build yet');
