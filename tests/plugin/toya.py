from toy_method import make_method

METHOD = make_method("toya")
