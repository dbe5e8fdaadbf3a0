int cmd_pretrain(int argc, char **argv);
int cmd_pretrain(int argc, char **argv) { (void)argc; (void)argv; return 1; }
