"""llama.cpp (GGUF) through llama.cpp's own converter and quantizer."""
