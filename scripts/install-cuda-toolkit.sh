#!/usr/bin/env bash
# Placeholder until the CUDA backend lands: see issue "Native engine, CUDA backend".
echo "CUDA toolkit: not needed yet"
