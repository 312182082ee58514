"""systolix.compiler: integer IR -> accelerator program and memory images."""
