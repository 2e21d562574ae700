"""Run an unlearning experiment from the command line, RecBole style.

    python run_recbole_unlearn.py --model=SASRec --dataset=ml-100k --unlearn_method=retrain
    python run_recbole_unlearn.py --config_files="my.yaml" --forget=requests.csv --epochs=5
"""
from recbole_unlearn.cli import command

if __name__ == "__main__":
    command()
