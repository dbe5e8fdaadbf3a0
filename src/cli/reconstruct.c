int cmd_reconstruct(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv) { (void)argc; (void)argv; return 1; }
